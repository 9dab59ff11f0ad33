"""Clean background: remove the (dilated) union of foreground masks from a frame and fill the hole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from components.storage import materialize

Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(frame (H, W, 3) uint8, hole (H, W) bool) -> the frame with the hole filled."""


def dilate(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Grow a mask by `fraction` of the frame's longer side (segmentation edges and shadows bleed out)."""
    radius = int(round(fraction * max(mask.shape)))
    if radius < 1:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def inpaint_opencv(frame: np.ndarray, hole: np.ndarray, radius: int = 5) -> np.ndarray:  # a Fill
    """Fill `hole` from its surroundings (Telea's fast marching method)."""
    if not hole.any():
        return frame.copy()
    return cv2.inpaint(frame, hole.astype(np.uint8) * 255, radius, cv2.INPAINT_TELEA)


def inpaint_temporal(
    frame: np.ndarray,
    hole: np.ndarray,
    others: list[tuple[np.ndarray, np.ndarray]],
    fill: Fill = inpaint_opencv,
) -> np.ndarray:
    """Fill `hole` with the per-pixel median of other frames where that pixel is uncovered, then `fill`.

    `others` holds (frame, foreground hole) pairs from other timestamps: with a static camera a moving
    entity uncovers what it hid, which beats any spatial guess.
    """
    result = frame.copy()
    if not hole.any() or not others:
        return fill(result, hole)
    stack = np.stack([f for f, _ in others]).astype(np.float32)
    covered = np.stack([h for _, h in others])
    stack[covered] = np.nan
    ys, xs = np.nonzero(hole)
    values = stack[:, ys, xs]  # (N, P, 3)
    seen = ~np.isnan(values).all(axis=0).any(axis=-1)
    with np.errstate(all="ignore"):
        median = np.nanmedian(values[:, seen], axis=0)
    result[ys[seen], xs[seen]] = np.clip(median, 0, 255).astype(np.uint8)
    remaining = np.zeros_like(hole, dtype=bool)
    remaining[ys[~seen], xs[~seen]] = True
    return fill(result, remaining) if remaining.any() else result


@dataclass
class DiffusersInpainter:
    """A diffusers inpainting pipeline (any `AutoPipelineForInpainting` folder) as a `Fill`.

    The frame is resized to `resolution` (a multiple of 8, what the model was trained at), inpainted with an
    empty-scene prompt, resized back, and only the hole's pixels are taken from the result.
    """

    pipeline: Any
    resolution: int = 512
    steps: int = 25
    prompt: str = "an empty scene, background only"
    seed: int = 0

    @classmethod
    def from_pretrained(cls, model_dir: str, resolution: int = 512, steps: int = 25) -> DiffusersInpainter:
        from diffusers import AutoPipelineForInpainting

        folder = materialize(model_dir, what="inpainting model folder", folder=True)
        pipeline = AutoPipelineForInpainting.from_pretrained(folder)
        pipeline.set_progress_bar_config(disable=True)
        return cls(pipeline, resolution, steps)

    def __call__(self, frame: np.ndarray, hole: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        if not hole.any():
            return frame.copy()
        h, w = frame.shape[:2]
        size = (self.resolution, self.resolution)
        image = Image.fromarray(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        mask = Image.fromarray(cv2.resize(hole.astype(np.uint8) * 255, size, interpolation=cv2.INTER_NEAREST))
        output = self.pipeline(
            prompt=self.prompt,
            image=image,
            mask_image=mask,
            height=self.resolution,
            width=self.resolution,
            num_inference_steps=self.steps,
            generator=torch.Generator().manual_seed(self.seed),
        ).images[0]
        painted = cv2.resize(np.asarray(output.convert("RGB")), (w, h), interpolation=cv2.INTER_AREA)
        result = frame.copy()
        result[hole] = painted[hole]
        return result
