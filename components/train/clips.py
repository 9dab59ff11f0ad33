"""Reading a target clip for training: frames evenly spaced over the clip, resized to cover and centre-cropped.
Light (PyAV, OpenCV, numpy), so a command checks that a dataset's clips decode before torch and DeepSpeed load."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np


@dataclass
class SampleSize:
    frames: int
    height: int
    width: int
    reference_size: int
    max_entities: int
    max_references: int


class SampleError(RuntimeError):
    """One sample cannot be read (missing or corrupt file); the loader skips it."""


def decode_clip(path: Path, frames: int, height: int, width: int) -> np.ndarray:
    """`frames` frames evenly spaced over the whole clip, resized to cover HxW and centre-cropped."""
    if not path.is_file():
        raise SampleError(f"video {path} does not exist")
    decoded = []
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise SampleError(f"video {path} has no video stream")
        for frame in container.decode(video=0):
            decoded.append(cover_crop(frame.to_ndarray(format="rgb24"), height, width))
    if not decoded:
        raise SampleError(f"video {path} decoded to zero frames")
    picks = np.linspace(0, len(decoded) - 1, frames).round().astype(int)
    return np.stack([decoded[i] for i in picks])


def cover_crop(image: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    top, left = (nh - height) // 2, (nw - width) // 2
    return resized[top : top + height, left : left + width]
