"""Video decoding and encoding with PyAV: one reader that fails loudly on broken files, one H.264 writer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np


class VideoError(RuntimeError):
    """A video could not be decoded (missing, unreadable, truncated or empty)."""


@dataclass(frozen=True)
class Video:
    """Decoded frames (T, H, W, 3) uint8 RGB, the stream's frame rate and its (width, height) before resizing."""

    frames: np.ndarray
    fps: float
    source_size: tuple[int, int]

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])


def read_video(path: str | Path, max_frames: int | None = None, max_side: int | None = None) -> Video:
    """Decode every frame of `path`; a decoder error or zero frames raises VideoError naming the file.

    With `max_side`, each frame is shrunk while decoding so its longer side is at most `max_side` (both sides
    even, as H.264 needs), so a long high-resolution video never sits in memory at full size.

    A truncated file usually decodes some frames and then fails or stops early; the container's declared
    frame count lets us tell "short" from "cut off".
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path} does not exist")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"video {path} has no video stream")
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)
            source_size = (stream.codec_context.width, stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate or 0
            fps = float(rate) if rate else 0.0
            for frame in container.decode(stream):
                frames.append(_shrink(frame.to_ndarray(format="rgb24"), max_side))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except VideoError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as error:
        raise VideoError(f"video {path} is unreadable after {len(frames)} frames: {error}") from error
    if not frames:
        raise VideoError(f"video {path} decoded to zero frames")
    complete = max_frames is not None and len(frames) >= max_frames
    if declared and not complete and len(frames) < declared:
        raise VideoError(f"video {path} is truncated: decoded {len(frames)} of {declared} declared frames")
    return Video(frames=np.stack(frames), fps=fps or 24.0, source_size=source_size)


def write_video(path: str | Path, frames: np.ndarray, fps: float, qp: int = 12) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as H.264 yuv420p mp4 (H and W must be even) at a constant `qp`.

    Constant quantizer, one thread: x264's adaptive rate control (mb-tree lookahead) does not give the same
    bytes run to run, and the sha256 in the manifest and the embedded dataset's determinism rely on it.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {width}x{height}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # bitexact: no encoder version or creation time in the header, so identical frames give identical files.
    with av.open(str(path), mode="w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=_rate(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qp": str(qp), "threads": "1", "preset": "medium"}
        stream.thread_count = 1
        for image in frames:
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"))
            )
        container.mux(stream.encode())


def even_size(height: int, width: int, max_side: int | None) -> tuple[int, int]:
    """(height, width) scaled so the longer side is at most `max_side`, rounded to even numbers."""
    scale = 1.0 if max_side is None else min(1.0, max_side / max(height, width))
    return max(2, int(round(height * scale / 2)) * 2), max(2, int(round(width * scale / 2)) * 2)


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    if max_side is None:
        return image
    height, width = even_size(*image.shape[:2], max_side)
    if (height, width) == image.shape[:2]:
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _rate(fps: float):
    from fractions import Fraction

    return Fraction(fps).limit_denominator(1001)
