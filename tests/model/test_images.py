"""The shared image decoder gives each mode's true 8-bit tones; broken and unsupported files get named errors."""

import io

import numpy as np
import pytest
from PIL import Image

from model.images import ImageDecodeError, decode_rgb8, read_rgb8, to_rgb8

TONES = np.arange(0, 256, 5, dtype=np.uint8).reshape(4, 13)  # the picture: 52 grey tones


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def grey(rgb: np.ndarray) -> np.ndarray:
    assert rgb.dtype == np.uint8 and rgb.shape == (*TONES.shape, 3)
    assert (rgb == rgb[..., :1]).all()
    return rgb[..., 0]


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_png_keeps_its_tones(mode):
    """Pillow's convert("RGB") clips 16-bit values to 255: the picture came back white."""
    sixteen = Image.frombytes(mode, TONES.shape[::-1], (TONES.astype(np.uint16) * 257).astype(
        ">u2" if mode.endswith("B") else "<u2").tobytes())  # fmt: skip
    np.testing.assert_array_equal(grey(decode_rgb8(encoded(sixteen), "ref")), TONES)


@pytest.mark.parametrize(
    ("mode", "values"),
    [
        ("I;16", TONES.astype("<u2") * 257),
        ("I;16L", TONES.astype("<u2") * 257),
        ("I;16N", TONES.astype(np.uint16) * 257),
        ("I", TONES.astype(np.int32) * 257),
        ("F", TONES.astype(np.float32) / 255),
        ("L", TONES),
    ],
)
def test_in_memory_modes_keep_their_tones(mode, values):
    image = Image.frombytes(mode, TONES.shape[::-1], np.ascontiguousarray(values).tobytes())
    np.testing.assert_array_equal(grey(to_rgb8(image)), TONES)


def test_palette_rgb_cmyk_and_webp_keep_their_colours():
    palette = Image.fromarray(TONES, "L").convert("P")
    np.testing.assert_array_equal(grey(decode_rgb8(encoded(palette), "p")), TONES)
    rgb = np.dstack([TONES, 255 - TONES, TONES // 2])
    np.testing.assert_array_equal(decode_rgb8(encoded(Image.fromarray(rgb), "WEBP", lossless=True), "w"), rgb)
    cyan = decode_rgb8(encoded(Image.new("CMYK", (8, 8), (255, 0, 0, 0)), "JPEG", quality=100), "c")
    assert np.abs(cyan.astype(int) - [0, 255, 255]).max() <= 2


def test_transparency_is_black_and_opaque_pixels_keep_their_tones():
    alpha = np.where(np.arange(TONES.size).reshape(TONES.shape) % 2, 255, 0).astype(np.uint8)
    expected = np.where(alpha == 255, TONES, 0)
    la = Image.fromarray(np.dstack([TONES, alpha]), "LA")
    np.testing.assert_array_equal(grey(decode_rgb8(encoded(la), "la")), expected)
    rgba = Image.fromarray(np.dstack([TONES, TONES, TONES, alpha]), "RGBA")
    np.testing.assert_array_equal(grey(decode_rgb8(encoded(rgba), "rgba")), expected)
    palette = Image.fromarray(TONES, "L").convert("P")
    keyed = int(np.asarray(palette)[0, 1])  # the palette index of the second pixel's tone
    out = grey(decode_rgb8(encoded(palette, transparency=keyed), "p"))
    assert out[0, 1] == 0 and (out[TONES != TONES[0, 1]] == TONES[TONES != TONES[0, 1]]).all()
    key = Image.fromarray(TONES, "L")
    out = grey(decode_rgb8(encoded(key, transparency=int(TONES[0, 2])), "l"))
    assert out[0, 2] == 0 and out[0, 3] == TONES[0, 3]


def test_exif_orientation_is_applied():
    upright = np.zeros((4, 8, 3), np.uint8)
    upright[:, :4] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: the viewer turns it 90 degrees clockwise
    stored = Image.fromarray(np.rot90(upright, 1).copy())
    out = decode_rgb8(encoded(stored, "JPEG", quality=100, exif=exif), "photo")
    assert out.shape == (4, 8, 3) and out[:, :3].min() > 200 and out[:, 5:].max() < 50


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "ref is empty"),
        (b"GIF89a" + b"\x00" * 20, "ref is a GIF image; GIF is not supported"),
        (b"BM" + b"\x00" * 20, "ref is a BMP image"),
        (b"not an image", r"ref is not a PNG/JPEG/WEBP image \(it starts with b'not an i'\)"),
        (
            encoded(Image.new("RGB", (64, 64), 9))[:80],
            r"ref could not be decoded \(OSError: image file is truncated",
        ),
    ],
)
def test_bad_bytes_get_a_named_reason(data, expected):
    with pytest.raises(ImageDecodeError, match=expected) as caught:
        decode_rgb8(data, "ref")
    assert "BytesIO" not in str(caught.value)


def test_animated_images_are_refused():
    frames = [Image.new("RGB", (4, 4), (40 * i, 0, 0)) for i in range(3)]
    for fmt in ("PNG", "WEBP"):
        data = encoded(frames[0], fmt, save_all=True, append_images=frames[1:])
        with pytest.raises(ImageDecodeError, match=f"animated {fmt} with 3 frames"):
            decode_rgb8(data, "ref")


def test_out_of_range_wide_images_are_refused_not_clipped():
    with pytest.raises(ImageDecodeError, match="expected finite values in"):
        to_rgb8(Image.fromarray(np.full((2, 2), 255.0, np.float32)))
    with pytest.raises(ImageDecodeError, match="expected 0..65535"):
        to_rgb8(Image.fromarray(np.full((2, 2), -1, np.int32)))


def test_read_rgb8_names_the_file(tmp_path):
    path = tmp_path / "cat.gif"
    path.write_bytes(b"GIF87a" + b"\x00" * 10)
    with pytest.raises(ImageDecodeError, match=f"image {path} is a GIF image"):
        read_rgb8(path)
    with pytest.raises(ImageDecodeError, match="cannot be read"):
        read_rgb8(tmp_path / "missing.png")
