"""Reading benchmark images and fingerprinting arrays (videos decode through components/media.py; files hash
with `components.storage.file_sha256`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image


def read_image(path: str | Path) -> np.ndarray:
    """uint8 [H, W, 3] or [H, W, 4] (alpha kept: the benchmark's references are transparent PNGs)."""
    image = Image.open(path)
    return np.array(image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB"))


def sha256_array(array: np.ndarray) -> str:
    h = hashlib.sha256(str((array.shape, str(array.dtype))).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()
