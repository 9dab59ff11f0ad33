"""Video and image encoding shared by the backend, the client and the CLI."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

# Below this many pixels a frame encodes faster on one x264 thread: starting and feeding its frame threads
# costs more than they save (2 cores, 8x32x32: 1.0 ms on one thread, 2.0 ms with the automatic count; at
# 128x128 of noise the automatic count is ahead, 24.5 against 27.7 ms for 16 frames).
ONE_THREAD_PIXELS = 128 * 128


def encode_mp4(video: np.ndarray, fps: int = 8) -> bytes:
    """uint8 [T, H, W, 3] -> H.264 MP4 bytes (yuv420p, so players everywhere open it).

    A small copy of `components/media.write_mp4` kept on purpose: the client SDK and the exported
    version (which carries only `model/` and `serving/`) must run without `components/`."""
    import av

    if video.dtype != np.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"video must be uint8 [T, H, W, 3]; got {video.dtype} {list(video.shape)}")
    frames, height, width, _ = video.shape
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        # yuv420p needs even sizes; pad by edge replication rather than fail on an odd size.
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        if height * width < ONE_THREAD_PIXELS:
            stream.thread_count = 1
        for frame in video:
            if width % 2 or height % 2:
                frame = np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
            for packet in stream.encode(
                av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            ):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def decode_mp4(data: bytes) -> np.ndarray:
    """MP4 bytes -> uint8 [T, H, W, 3] (lossy: H.264 does not give back the exact frames)."""
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def encode_png(image: np.ndarray | Image.Image) -> bytes:
    """uint8 [H, W, 3] array or PIL image -> PNG bytes (lossless, so the server sees the exact pixels)."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise ValueError(f"image array must be uint8 [H, W, 3]; got {image.dtype} {list(image.shape)}")
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
