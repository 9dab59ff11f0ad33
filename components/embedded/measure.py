"""Score a mined embedded dataset against its ground truth: mask IoU per entity and background PSNR."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from components.ground_truth import load_ground_truth, load_mask


def keyframes(clip_start: int, clip_end: int, num_frames: int) -> list[int]:
    """First, middle and last frame (source indices) of a clip of `num_frames` frames in [start, end)."""
    stride = (clip_end - 1 - clip_start) // max(1, num_frames - 1)
    clip = [clip_start + stride * k for k in range(num_frames)]
    return [clip[0], clip[len(clip) // 2], clip[-1]]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def measure_mining(dataset: str | Path, mined: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(entities, samples): IoU of each mined entity's keyframe masks with the ground truth, and PSNR of each
    mined background against the clean one, for the samples the miner kept. An entity is `bound` when its
    mask overlaps its own ground truth more than any other entity's (the word got the right reference);
    ground-truth entities the miner dropped are rows with iou 0."""
    truth = load_ground_truth(dataset)
    mined = Path(mined)
    manifest = pd.read_parquet(mined / "manifest.parquet")
    entity_rows, sample_rows = [], []
    for sample in manifest.itertuples():
        gt = truth[truth.sample_id == sample.sample_id]
        frames = keyframes(sample.clip_start, sample.clip_end, sample.num_frames)
        size = (sample.width, sample.height)
        fg_masks = {
            r.word: [_gt_mask(r.mask_paths[f], size) for f in frames] for r in gt.itertuples() if r.mask_paths
        }
        background_truth = [~np.logical_or.reduce([m[k] for m in fg_masks.values()]) for k in range(3)]
        mined_entities = {e["word"]: e for e in sample.entities}
        for r in gt.itertuples():
            expected = fg_masks.get(r.word, background_truth)
            entity = mined_entities.get(r.word)
            masks = [load_mask(mined / p) for p in entity["mask_paths"]] if entity is not None else None

            def mean_iou(truth_masks: list[np.ndarray], masks=masks) -> float:
                return (
                    float(np.mean([iou(a, b) for a, b in zip(masks, truth_masks, strict=True)]))
                    if masks
                    else 0.0
                )

            score = mean_iou(expected)
            others = [mean_iou(m) for w, m in fg_masks.items() if w != r.word and r.word in fg_masks]
            bound = entity is not None and score >= max(others, default=0.0)
            entity_rows.append(
                {"sample_id": sample.sample_id, "word": r.word, "kind": r.kind, "identity": r.identity,
                 "found": entity is not None, "iou": score, "bound": bound}
            )  # fmt: skip
        clean = cv2.cvtColor(cv2.imread(gt.background_path.iloc[0]), cv2.COLOR_BGR2RGB)
        background = cv2.cvtColor(cv2.imread(str(mined / sample.background_path)), cv2.COLOR_BGR2RGB)
        sample_rows.append(
            {"sample_id": sample.sample_id, "background_psnr": psnr(background, _fit(clean, size))}
        )
    return pd.DataFrame(entity_rows), pd.DataFrame(sample_rows)


def _gt_mask(path: str, size: tuple[int, int]) -> np.ndarray:
    mask = load_mask(path)
    if mask.shape[::-1] != size:
        mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return mask


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return image if image.shape[1::-1] == size else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
