"""Reading, writing and fingerprinting videos and images as uint8 numpy arrays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def read_video(path: str | Path, max_frames: int | None = None) -> tuple[np.ndarray, float]:
    """All (or the first `max_frames`) frames as uint8 [T, H, W, 3] and the stream's guessed frame rate."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {str(path)!r} does not exist")
    frames = []
    with av.open(str(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        fps = float(stream.guessed_rate or stream.average_rate or 0.0)
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"video {str(path)!r} has no decodable frames")
    return np.stack(frames), fps


def read_frames_at(path: str | Path, fractions: tuple[float, ...]) -> np.ndarray:
    """Frames at fractions of the clip's length (the benchmark's ground-truth frames are at 5%, 50%, 95%)."""
    frames, _ = read_video(path)
    idx = [min(len(frames) - 1, int(f * len(frames))) for f in fractions]
    return frames[idx]


def read_image(path: str | Path) -> np.ndarray:
    """uint8 [H, W, 3] or [H, W, 4] (alpha kept: the benchmark's references are transparent PNGs)."""
    image = Image.open(path)
    return np.array(image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"))


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_array(array: np.ndarray) -> str:
    h = hashlib.sha256(str((array.shape, str(array.dtype))).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()
