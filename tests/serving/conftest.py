"""Shared fixtures: test images, including hostile ones, built in memory."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image


def png(height: int = 40, width: int = 48, seed: int = 0) -> bytes:
    pixels = (np.random.default_rng(seed).random((height, width, 3)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def png_claiming_size(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR (with a correct CRC) claims another size: a decompression bomb's header."""
    data = bytearray(png(1, 1))
    ihdr = 12  # 8-byte signature + 4-byte length; then b"IHDR" + 13 data bytes + CRC
    assert data[ihdr : ihdr + 4] == b"IHDR"
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    return bytes(data)


@pytest.fixture(scope="session")
def make_png():
    return png


@pytest.fixture(scope="session")
def make_bomb():
    return png_claiming_size
