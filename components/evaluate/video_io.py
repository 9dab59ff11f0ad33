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


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 8.0) -> Path:
    """H.264 mp4 (even sizes are padded by repeating the edge, which libx264 requires)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames.shape[1:3]
    padded = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=int(round(fps)))
        stream.width, stream.height = padded.shape[2], padded.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12"}
        for frame in padded:
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24"))
            )
        container.mux(stream.encode())
    return path


def write_gif(frames: np.ndarray, path: str | Path, fps: float = 8.0, height: int = 128) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = height / frames.shape[1]
    size = (max(1, int(round(frames.shape[2] * scale))), height)
    images = [Image.fromarray(f[:, :, :3]).resize(size, Image.BILINEAR) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / max(fps, 1)), loop=0)
    return path


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
