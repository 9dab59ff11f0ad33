"""Toy-world metrics: meaningful scores on the embedded dataset without any pretrained evaluator.

The embedded dataset knows exactly where each entity is (a mask per frame) and what it looks like (the
identity's cut-out photo), so a generated video can be scored against that ground truth directly.

Stable API (the trainer's learnability benchmark uses it):

    score_sample(video, masks, references) -> ToySampleScores
    reference_fidelity(video, mask, reference, reference_mask=None) -> float | None
    binding_accuracy(video, masks, references) -> float | None
    lane_assignment_accuracy(video, masks, references) -> float | None
    motion(video) -> MotionScores
    load_toy_ground_truth(dataset_root, sample_id, frames=None, size=None) -> ToyGroundTruth

Inputs are plain arrays: `video` uint8 [T, H, W, 3]; `masks[word]` bool [T, H, W] (where the entity should
be, same T/H/W as the video); `references[word]` uint8 [h, w, 3] or [h, w, 4] (alpha marks the entity's
pixels), or a `(rgb, mask)` pair.

Definitions:
- appearance similarity of a set of pixels to a reference = cosine similarity of their colour histograms
  (16 bins per channel, concatenated, each channel L1-normalised); 1.0 means identical colour statistics.
- reference_fidelity = mean over frames where the entity's expected region is non-empty of the appearance
  similarity between the generated pixels inside that region and the reference's entity pixels.
- binding_accuracy (two or more entities) = fraction of (entity, frame) pairs whose region is more similar
  to its own reference than to every other entity's reference.
- lane_assignment_accuracy (exactly two entities) = fraction of frames in which the two entities' lanes
  (the image rows each one covers and the other does not, across the full width) match their own
  references better than the swapped pair: s(a, ref_a) + s(b, ref_b) > s(a, ref_b) + s(b, ref_a). It asks
  only which appearance went to which lane, so it scores generated videos whose entities sit elsewhere
  along their lane than the ground truth's, and the swapped-pair comparison cancels any bias of one
  reference towards the shared background colours.
- motion = mean absolute frame difference (in [0, 1]) and mean Farneback flow magnitude (pixels / frame).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BINS = 16
Reference = np.ndarray | tuple[np.ndarray, np.ndarray]


@dataclass
class MotionScores:
    frame_difference: float
    flow_magnitude: float


@dataclass
class ToySampleScores:
    reference_fidelity: dict[str, float]  # per entity word (entities never visible are left out)
    binding_accuracy: float | None  # None with fewer than two scored entities
    motion: MotionScores

    def mean_fidelity(self) -> float | None:
        return float(np.mean(list(self.reference_fidelity.values()))) if self.reference_fidelity else None


@dataclass
class ToyGroundTruth:
    sample_id: str
    caption: str
    masks: dict[str, np.ndarray]  # word -> bool [T, H, W]
    references: dict[str, tuple[np.ndarray, np.ndarray]]  # word -> (rgb uint8 [h, w, 3], bool mask [h, w])


def _check_video(video: np.ndarray) -> None:
    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 [T, H, W, 3], got dtype={video.dtype} shape={video.shape}")


def _split_reference(reference: Reference) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(reference, tuple):
        rgb, mask = reference
        return rgb[..., :3], mask.astype(bool)
    if reference.dtype != np.uint8 or reference.ndim != 3 or reference.shape[2] not in (3, 4):
        raise ValueError(
            f"reference must be uint8 [h, w, 3|4], got dtype={reference.dtype} shape={reference.shape}"
        )
    if reference.shape[2] == 4:
        return reference[..., :3], reference[..., 3] > 0
    return reference, np.ones(reference.shape[:2], bool)


def colour_histogram(pixels: np.ndarray) -> np.ndarray:
    """[N, 3] uint8 pixels -> 48-d histogram (16 bins per channel, each channel summing to 1)."""
    pixels = pixels.reshape(-1, 3)
    hist = [np.bincount(pixels[:, c] // (256 // BINS), minlength=BINS).astype(np.float64) for c in range(3)]
    return np.concatenate([h / max(h.sum(), 1.0) for h in hist])


def appearance_similarity(pixels: np.ndarray, reference_hist: np.ndarray) -> float:
    h = colour_histogram(pixels)
    denom = np.linalg.norm(h) * np.linalg.norm(reference_hist)
    return float(h @ reference_hist / denom) if denom > 0 else 0.0


def _reference_hist(reference: Reference) -> np.ndarray:
    rgb, mask = _split_reference(reference)
    if not mask.any():
        raise ValueError("reference has no entity pixels (its mask/alpha is empty)")
    return colour_histogram(rgb[mask])


def reference_fidelity(
    video: np.ndarray, mask: np.ndarray, reference: Reference, reference_mask: np.ndarray | None = None
) -> float | None:
    """Mean appearance similarity of the region `mask` [T, H, W] to the reference; None if never visible."""
    _check_video(video)
    if mask.shape != video.shape[:3]:
        raise ValueError(f"mask shape {mask.shape} must equal the video's [T, H, W] {video.shape[:3]}")
    ref = _reference_hist((reference[..., :3], reference_mask) if reference_mask is not None else reference)
    scores = [appearance_similarity(frame[m], ref) for frame, m in zip(video, mask, strict=True) if m.any()]
    return float(np.mean(scores)) if scores else None


def binding_accuracy(
    video: np.ndarray, masks: Mapping[str, np.ndarray], references: Mapping[str, Reference]
) -> float | None:
    """Fraction of visible (entity, frame) pairs closer to their own reference than to any other's."""
    _check_video(video)
    words = [w for w in masks if w in references]
    if len(words) < 2:
        return None
    hists = {w: _reference_hist(references[w]) for w in words}
    correct = total = 0
    for w in words:
        for frame, m in zip(video, masks[w], strict=True):
            if not m.any():
                continue
            sims = {o: appearance_similarity(frame[m], hists[o]) for o in words}
            own = sims.pop(w)
            correct += int(own > max(sims.values()))
            total += 1
    return correct / total if total else None


def lane_assignment_accuracy(
    video: np.ndarray, masks: Mapping[str, np.ndarray], references: Mapping[str, Reference]
) -> float | None:
    """Fraction of frames whose two lanes prefer their own references to the swapped pair; None if unscorable."""
    _check_video(video)
    words = [w for w in masks if w in references]
    if len(words) != 2:
        return None
    a, b = words
    hist = {w: _reference_hist(references[w]) for w in words}
    correct = total = 0
    for t, frame in enumerate(video):
        rows_a, rows_b = masks[a][t].any(axis=1), masks[b][t].any(axis=1)
        lane_a, lane_b = rows_a & ~rows_b, rows_b & ~rows_a
        if not lane_a.any() or not lane_b.any():
            continue
        pixels_a, pixels_b = frame[lane_a], frame[lane_b]
        own = appearance_similarity(pixels_a, hist[a]) + appearance_similarity(pixels_b, hist[b])
        swapped = appearance_similarity(pixels_a, hist[b]) + appearance_similarity(pixels_b, hist[a])
        correct += int(own > swapped)
        total += 1
    return correct / total if total else None


def motion(video: np.ndarray) -> MotionScores:
    """Mean |frame_t+1 - frame_t| / 255 and mean Farneback flow magnitude; zeros for a single frame."""
    from components.evaluate.dynamics import FarnebackFlow

    _check_video(video)
    if len(video) < 2:
        return MotionScores(0.0, 0.0)
    diff = float(np.abs(np.diff(video.astype(np.int16), axis=0)).mean() / 255.0)
    flow = FarnebackFlow()
    mags = [
        float(np.linalg.norm(flow(a, b), axis=-1).mean()) for a, b in zip(video[:-1], video[1:], strict=True)
    ]
    return MotionScores(diff, float(np.mean(mags)))


def score_sample(
    video: np.ndarray, masks: Mapping[str, np.ndarray], references: Mapping[str, Reference]
) -> ToySampleScores:
    fidelity = {}
    for word, mask in masks.items():
        if word in references:
            value = reference_fidelity(video, mask, references[word])
            if value is not None:
                fidelity[word] = value
    return ToySampleScores(fidelity, binding_accuracy(video, masks, references), motion(video))


def resample_masks(masks: np.ndarray, frames: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """Nearest-neighbour resampling in time and space, so ground truth matches a generated video's shape."""
    import cv2

    if frames is not None and frames != len(masks):
        idx = np.minimum((np.arange(frames) * len(masks) / frames).astype(int), len(masks) - 1)
        masks = masks[idx]
    if size is not None and size != masks.shape[1:]:
        masks = np.stack(
            [cv2.resize(m.astype(np.uint8), size[::-1], interpolation=cv2.INTER_NEAREST) > 0 for m in masks]
        )
    return masks


def load_toy_ground_truth(
    dataset_root: str | Path, sample_id: str, frames: int | None = None, size: tuple[int, int] | None = None
) -> ToyGroundTruth:
    """Masks and identity photos of one sample of the embedded dataset (read with `components.ground_truth`).

    `frames`/`size` (H, W) resample the masks to a generated video's shape; foreground entities only.
    """
    import cv2

    from components.ground_truth import GROUND_TRUTH, load_ground_truth, load_mask

    table = load_ground_truth(dataset_root)
    rows = table[(table["sample_id"] == sample_id) & (table["kind"] != "background")]
    if rows.empty:
        raise ValueError(
            f"sample_id={sample_id!r} has no foreground entities in {dataset_root}'s ground truth"
        )
    truth = Path(dataset_root)
    truth = truth if (truth / "ground_truth.parquet").is_file() else truth / GROUND_TRUTH
    masks, references = {}, {}
    for row in rows.itertuples(index=False):
        masks[row.word] = resample_masks(np.stack([load_mask(p) for p in row.mask_paths]), frames, size)
        rgba = cv2.cvtColor(
            cv2.imread(str(truth / "identities" / f"{row.identity}.png"), cv2.IMREAD_UNCHANGED),
            cv2.COLOR_BGRA2RGBA,
        )
        references[row.word] = (rgba[..., :3], rgba[..., 3] > 0)
    return ToyGroundTruth(sample_id, str(rows.iloc[0]["caption"]), masks, references)


def toy_truth_for_benchmark(benchmark: Any, dataset_root: str | Path) -> dict[str, ToyGroundTruth]:
    """Ground truth for every benchmark sample that comes from the embedded dataset at `dataset_root`.

    A sample matches an embedded clip by its sample_id or by the file stem of its `source`; masks are cut to
    the sample's `source_frames` (a mined clip's frames inside the source video) when known.
    """
    from components.ground_truth import load_ground_truth

    known = set(load_ground_truth(dataset_root)["sample_id"])
    out = {}
    for sample in benchmark.samples:
        candidates = [sample.sample_id, Path(str(sample.source or "")).stem]
        match = next((c for c in candidates if c in known), None)
        if match is not None:
            truth = load_toy_ground_truth(dataset_root, match)
            if sample.source_frames:  # a mined clip is a strided sub-range of the source video
                idx = np.minimum(
                    np.array(sample.source_frames), min(len(m) for m in truth.masks.values()) - 1
                )
                truth.masks = {w: m[idx] for w, m in truth.masks.items()}
            out[sample.key] = truth
    return out
