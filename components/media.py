"""Writing videos for people to look at: H.264 mp4 and GIF previews (training samples, evaluation reports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


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
