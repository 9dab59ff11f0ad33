"""The reference check: does a reference steer what the model paints?

Shared by the demo (`alchemist pipeline run --local` ends with it) and `benchmarks/learns_personalization.py`.
Both generate in a world where two equally sized identities move in separate lanes, so neither size nor kind
tells which reference goes where; the caller passes that world's lane words (upper lane first), which order
the shuffled references and the strip's reference columns.

Scores come from `toyworld` against the embedded ground truth (the identity photos and exact masks):
fidelity is colour agreement inside each entity's true region, compared between generating with each clip's
own references and with another clip's ("swapped").
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.evaluate import toyworld


@dataclass
class EvalSample:
    sample_id: str
    video: np.ndarray  # uint8 [T, H, W, 3]: the real clip, decoded as the trainer decodes it
    caption: str
    roles: dict[str, str]  # entity word -> identity name
    masks: dict[str, np.ndarray]  # entity word -> bool [T, H, W] at the generated size
    truth: dict[str, tuple[np.ndarray, np.ndarray]]  # entity word -> identity photo (rgb, mask)
    references: dict[str, list[np.ndarray]]  # entity word -> mined crops (uint8)
    background: np.ndarray | None


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def load_rgba(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    with Image.open(path) as im:
        rgba = np.asarray(im.convert("RGBA"))
    return rgba[..., :3].copy(), rgba[..., 3] > 0


def clip_masks(paths: list[str], start: int, end: int, frames: int, size: int) -> np.ndarray:
    """Ground-truth masks of the mined clip's frames, picked and resized exactly as the trainer decodes."""
    from components.ground_truth import load_mask

    window = paths[start:end]
    picks = np.linspace(0, len(window) - 1, frames).round().astype(int)
    masks = np.stack([load_mask(window[i]) for i in picks])
    return toyworld.resample_masks(masks, None, (size, size))


def condition_references(
    samples: list[EvalSample], i: int, condition: str, lane_words: tuple[str, ...]
) -> dict[str, list[np.ndarray]]:
    """The references sample i is generated with: "correct" (its own), "shuffled" (the next sample's crops,
    one per word; a word the donor lacks takes the donor's first crop in `lane_words` order) or "none"."""
    sample = samples[i]
    if condition == "shuffled":
        donor = samples[(i + 1) % len(samples)]
        pool = [img for word in lane_words for img in donor.references.get(word, [])]
        return {word: [donor.references.get(word, pool)[0]] for word in sample.references}
    if condition == "none":
        return {}
    return {word: imgs[:3] for word, imgs in sample.references.items()}


def held_out_samples(embedded: Path, mined: Path, frames: int, size: int, limit: int) -> list[EvalSample]:
    """Up to `limit` mined clips outside the train split whose every entity is visible in every frame."""
    from components.ground_truth import load_ground_truth
    from components.manifest import read_manifest
    from components.media import read_video

    truth = load_ground_truth(embedded)
    photos = Path(embedded) / "ground_truth" / "identities"
    rows = [r for r in read_manifest(Path(mined), split=None) if r["split"] != "train"]
    rows += [r for r in read_manifest(Path(mined), split="train")]  # a small demo may hold out too few
    samples: list[EvalSample] = []
    for row in rows:
        gt = truth[(truth["sample_id"] == row["sample_id"]) & (truth["kind"] != "background")]
        words = {e["word"] for e in row["entities"]}
        entities = [r for r in gt.itertuples(index=False) if r.word in words]
        if len(entities) < 2 or len(samples) >= limit:
            continue
        masks = {
            r.word: clip_masks(list(r.mask_paths), row["clip_start"], row["clip_end"], frames, size)
            for r in entities
        }
        if not all(m.any(axis=(1, 2)).all() for m in masks.values()):
            continue
        samples.append(
            EvalSample(
                sample_id=row["sample_id"],
                video=read_video(Path(mined) / row["video_path"], count=frames, cover=(size, size)).frames,
                caption=row["caption"],
                roles={r.word: r.identity for r in entities},
                masks=masks,
                truth={r.word: load_rgba(photos / f"{r.identity}.png") for r in entities},
                references={
                    e["word"]: [load_rgb(Path(mined) / p) for p in e["reference_paths"]]
                    for e in row["entities"]
                    if e["word"] in masks
                },
                background=load_rgb(Path(mined) / row["background_path"])
                if row.get("background_path")
                else None,
            )
        )
    return samples


@dataclass
class ReferenceCheck:
    correct: float  # mean fidelity with each clip's own references
    swapped: float  # mean fidelity with another clip's references
    n: int
    strip: Path
    gif: Path

    def line(self) -> str:
        return (
            f"reference check: fidelity with correct references {self.correct:.3f} "
            f"vs swapped {self.swapped:.3f} (n={self.n})"
        )


def reference_check(
    generator,
    samples: list[EvalSample],
    lane_words: tuple[str, ...],
    out: Path,
    steps: int,
    guidance: float = 4.0,
    seed: int = 0,
    shown: int = 4,
) -> ReferenceCheck:
    """Generate every sample from noise with its own and with swapped references; score both against the
    ground truth; write a PNG strip and a GIF of the first `shown` prompts, one row each:
    references | generated with them | swapped references | generated with those."""
    from components.media import write_gif

    scores: dict[str, list[float]] = {"correct": [], "shuffled": []}
    rows = []
    for i, sample in enumerate(samples):
        videos = {}
        for condition in scores:
            refs = condition_references(samples, i, condition, lane_words)
            videos[condition] = generator.generate(
                sample.caption, references=refs, background=sample.background, steps=steps,
                guidance=guidance, seed=seed + i,
            )  # fmt: skip
            fidelity = toyworld.score_sample(videos[condition], sample.masks, sample.truth).mean_fidelity()
            if fidelity is not None:
                scores[condition].append(fidelity)
            videos[f"{condition}_refs"] = refs
        if i < shown:
            rows.append(_row_frames(videos, lane_words, sample.video.shape[1]))
    out.mkdir(parents=True, exist_ok=True)
    frames = np.concatenate(rows, axis=1)  # [T, rows * H, W, 3]
    strip = out / "reference_check.png"
    _save_png(frames[frames.shape[0] // 2], strip)
    gif = write_gif(frames, out / "reference_check.gif", height=3 * frames.shape[1])
    n = min(len(v) for v in scores.values())
    return ReferenceCheck(
        float(np.mean(scores["correct"])) if scores["correct"] else float("nan"),
        float(np.mean(scores["shuffled"])) if scores["shuffled"] else float("nan"),
        n,
        strip,
        gif,
    )


def _refs_column(
    refs: dict[str, list[np.ndarray]], lane_words: tuple[str, ...], size: int, frames: int
) -> np.ndarray:
    """The references of each word stacked top to bottom (upper lane first), as a [T, size, size/2, 3] column."""
    import cv2

    def lane(item: tuple[str, list]) -> int:
        return lane_words.index(item[0]) if item[0] in lane_words else len(lane_words)

    half = size // max(1, len(refs))
    tiles = [
        cv2.resize(imgs[0], (size // 2, half), interpolation=cv2.INTER_AREA)
        for _, imgs in sorted(refs.items(), key=lane)
    ]
    column = np.concatenate(tiles, axis=0) if tiles else np.zeros((size, size // 2, 3), np.uint8)
    column = cv2.resize(column, (size // 2, size), interpolation=cv2.INTER_NEAREST)
    return np.repeat(column[None], frames, axis=0)


def _row_frames(videos: dict, lane_words: tuple[str, ...], size: int) -> np.ndarray:
    """One prompt's row: correct references | generated with them | swapped references | generated with those."""
    t = videos["correct"].shape[0]
    gap = np.full((t, size, 2, 3), 255, np.uint8)
    parts = [
        _refs_column(videos["correct_refs"], lane_words, size, t), gap, videos["correct"], gap, gap,
        _refs_column(videos["shuffled_refs"], lane_words, size, t), gap, videos["shuffled"],
    ]  # fmt: skip
    return np.concatenate(parts, axis=2)


def _save_png(image: np.ndarray, path: Path, scale: int = 4) -> None:
    from PIL import Image

    big = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    Image.fromarray(big).save(path)
