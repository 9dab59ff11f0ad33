"""The one image decoder: encoded bytes, a file or a PIL image -> uint8 [H, W, 3] RGB in the picture's tones.

Serving (request references), mining (mask folders), training and the client all decode here, so a
reference means the same pixels wherever it is read. It lives in `model/` because that is the one
package every other layer may import (serving may not import components, components may not import
serving), and the exported Triton version carries a snapshot of `model/` anyway. It needs only PIL and
numpy, which torch, transformers and diffusers already bring.

Why not `image.convert("RGB")`: Pillow clips 16-bit and 32-bit greyscale into 0..255, so a 16-bit PNG
comes out nearly white. Here:
- 16-bit modes (`I;16`, `I;16B`, `I;16L`, `I;16N`) and `I` are scaled from 0..65535 (`I` is what a
  16-bit greyscale PNG decodes to in other Pillow versions; values outside 0..65535 are refused);
- `F` is read as floats in [0, 1], the float-image convention of numpy, torch and scikit-image;
  values outside it, NaN or infinity are refused rather than guessed at;
- transparency (`LA`, `La`, `PA`, `RGBA`, `RGBa`, `P` or `L`/`RGB`/`I;16` with a transparency key) is
  composited over black, which is what the miner's reference crops hold outside the entity;
- `1`, `L`, `P`, `CMYK`, `YCbCr`, `LAB`, `HSV`, `RGBX` go through Pillow's own 8-bit conversion;
- the EXIF orientation is applied, as every viewer does; colour profiles are not.
Animated images (a multi-picture JPEG gives its main picture) and formats other than PNG, JPEG and WebP are refused with their name.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

FORMATS = ("PNG", "JPEG", "WEBP")
_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N")
_ALPHA = ("LA", "La", "PA", "RGBA", "RGBa")
# Leading bytes of formats people send by mistake, so the error can name them.
_OTHER_FORMATS = {
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"\x00\x00\x01\x00": "ICO",
    b"%PDF": "PDF",
    b"<svg": "SVG",
    b"<?xml": "SVG/XML",
}
# What a broken file can raise inside Pillow's decoders.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, zlib.error)


class ImageDecodeError(ValueError):
    """An image that cannot become RGB pixels; the message names the image (`what`) and the reason."""


def decode_rgb8(data: bytes, what: str, max_pixels: int | None = None) -> np.ndarray:
    """Encoded PNG/JPEG/WebP bytes -> uint8 [H, W, 3]. `max_pixels` is checked from the header, before decoding."""
    if not data:
        raise ImageDecodeError(f"{what} is empty; expected a {_names()} image")
    other = next((name for magic, name in _OTHER_FORMATS.items() if data.startswith(magic)), None)
    if other is not None:
        raise ImageDecodeError(f"{what} is a {other} image; {other} is not supported, send {_names()}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:  # reads the header only
                _check_header(image, what, max_pixels)
                image.load()
                return to_rgb8(image, what)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as exc:  # its message is the BytesIO repr, which names nothing useful
        raise ImageDecodeError(f"{what} is not a {_names()} image (it starts with {data[:8]!r})") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own header check, for sizes far past any limit
        limit = f"more than {max_pixels}" if max_pixels is not None else "too many"
        raise ImageDecodeError(f"{what} declares {limit} pixels in its header ({exc})") from exc
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError(f"{what} could not be decoded ({type(exc).__name__}: {exc})") from exc


def read_rgb8(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """An image file -> uint8 [H, W, 3]; errors name the path."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImageDecodeError(f"image {path} cannot be read ({exc.strerror or exc})") from exc
    return decode_rgb8(data, f"image {path}", max_pixels)


def to_rgb8(image: Image.Image, what: str = "image") -> np.ndarray:
    """A decoded PIL image of any mode -> uint8 [H, W, 3] (rules in the module docstring)."""
    image = ImageOps.exif_transpose(image) if image.getexif().get(0x0112, 1) != 1 else image
    if image.width < 1 or image.height < 1:
        raise ImageDecodeError(f"{what} has no pixels ({image.width}x{image.height})")
    mode, key = image.mode, image.info.get("transparency")
    if mode in _SIXTEEN_BIT or mode == "I":
        values = np.asarray(image).astype(np.int64)
        if mode == "I" and (values.min() < 0 or values.max() > 65535):
            raise ImageDecodeError(
                f"{what} is a 32-bit integer image with values {values.min()}..{values.max()}; "
                "expected 0..65535 (16-bit)"
            )
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)
        if isinstance(key, int):
            grey[values == key] = 0
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise ImageDecodeError(
                f"{what} is a float image with values {np.nanmin(values)}..{np.nanmax(values)} "
                f"(finite: {bool(np.isfinite(values).all())}); expected finite values in [0, 1]"
            )
        return np.repeat(np.rint(values * 255).astype(np.uint8)[..., None], 3, axis=2)
    if mode in _ALPHA or key is not None:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.uint16)
        rgb = (rgba[..., :3] * rgba[..., 3:] + 127) // 255  # over black
        return rgb.astype(np.uint8)
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _check_header(image: Image.Image, what: str, max_pixels: int | None) -> None:
    width, height = image.size
    if max_pixels is not None and width * height > max_pixels:
        raise ImageDecodeError(
            f"{what} is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1 and image.format != "MPO":  # a camera's MPO JPEG holds previews after its main picture
        raise ImageDecodeError(
            f"{what} is an animated {image.format} with {frames} frames; send a still image"
        )


def _names() -> str:
    return "/".join(FORMATS)
