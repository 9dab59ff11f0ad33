"""The one video reader and the one video writer of every step (PyAV, H.264 mp4), and GIF previews.

A truncated or corrupt video is an error naming the file, everywhere: `read_video` raises `VideoError` when
the file is missing, has no video stream, stops decoding with an error, decodes to no frames, or decodes
fewer frames than its container declares (a cut-off mp4 often decodes its first frames and then just
stops). So mining rejects the video, validation reports it unreadable, training skips the sample and its
preflight does not count it as readable, and evaluation fails on it: one file, one verdict.

Writing is deterministic (a constant quantizer, one thread, no encoder version or time in the header), so
identical frames give identical bytes: the manifest's sha256 and the embedded dataset rely on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


class VideoError(RuntimeError):
    """A video could not be decoded (missing, unreadable, truncated or empty)."""


@dataclass(frozen=True)
class Video:
    """Frames (T, H, W, 3) uint8 RGB, the stream's frame rate (0.0 when the file does not say) and its
    (width, height) before any resizing."""

    frames: np.ndarray
    fps: float
    source_size: tuple[int, int]


def read_video(
    path: str | Path,
    max_frames: int | None = None,
    max_side: int | None = None,
    count: int | None = None,
    at: Sequence[float] | None = None,
    cover: tuple[int, int] | None = None,
) -> Video:
    """Decode `path`, the first `max_frames` frames or all of them (then checked against the declared count).

    `max_side` shrinks each frame while decoding so its longer side is at most that (both sides even), so a
    long high-resolution video never sits in memory at full size. Of the decoded frames, `count` keeps that
    many evenly spaced over the clip (training), `at` the frames at those fractions of its length
    (the benchmark's ground truth at 5%, 50%, 95%). `cover` (height, width) resizes the kept frames to
    cover that size and crops the centre.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video {path} does not exist")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.video:
                raise VideoError(f"video {path} has no video stream")
            stream = container.streams.video[0]
            declared = int(stream.frames or 0)
            source_size = (stream.codec_context.width, stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate
            for frame in container.decode(stream):
                frames.append(_shrink(frame.to_ndarray(format="rgb24"), max_side))
                if max_frames is not None and len(frames) >= max_frames:
                    break
    except (av.error.FFmpegError, ValueError, OSError) as error:
        raise VideoError(f"video {path} is unreadable after {len(frames)} frames: {error}") from error
    if not frames:
        raise VideoError(f"video {path} decoded to zero frames")
    complete = max_frames is not None and len(frames) >= max_frames
    if declared and not complete and len(frames) < declared:
        raise VideoError(f"video {path} is truncated: decoded {len(frames)} of {declared} declared frames")
    n = len(frames)
    if count is not None:
        frames = [frames[i] for i in np.linspace(0, n - 1, count).round().astype(int)]
    if at is not None:
        frames = [frames[min(n - 1, int(f * n))] for f in at]
    if cover is not None:
        frames = [_cover(image, *cover) for image in frames]
    return Video(np.stack(frames), float(rate) if rate else 0.0, source_size)


def write_mp4(frames: np.ndarray, path: str | Path, fps: float = 8.0, qp: int = 12) -> Path:
    """(T, H, W, 3) uint8 RGB frames as H.264 yuv420p at a constant `qp`; odd sizes are padded by repeating
    the edge, which yuv420p requires.

    Constant quantizer, one thread: x264's adaptive rate control (mb-tree lookahead) does not give the same
    bytes run to run."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w", container_options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"qp": str(qp), "threads": "1", "preset": "medium"}
        stream.thread_count = 1
        for image in frames:
            container.mux(
                stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24"))
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


def _shrink(image: np.ndarray, max_side: int | None) -> np.ndarray:
    """Longer side at most `max_side`, both sides even (H.264 needs them even)."""
    if max_side is None:
        return image
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    height, width = max(2, int(round(h * scale / 2)) * 2), max(2, int(round(w * scale / 2)) * 2)
    if (height, width) == (h, w):
        return image
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _cover(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resized to cover height x width, then the centre cropped to it."""
    h, w = image.shape[:2]
    scale = max(height / h, width / w)
    nh, nw = max(height, round(h * scale)), max(width, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp)
    top, left = (nh - height) // 2, (nw - width) // 2
    return resized[top : top + height, left : left + width]
