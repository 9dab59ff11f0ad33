"""Image decoding under random bytes, damaged files and every mode and size: true tones or a named error."""

import io

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from model.images import ImageDecodeError, decode_rgb8


def _encode(image: Image.Image, fmt: str) -> bytes:
    options = {"lossless": True} if fmt == "WEBP" else {}
    if fmt == "PNG" and "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@st.composite
def pictures(draw) -> tuple[Image.Image, np.ndarray]:
    """A random picture in a random PNG mode and size, and the 8-bit RGB it must decode to (an oracle
    written from the PNG modes' definitions, independent of the decoder)."""
    height, width = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    mode = draw(st.sampled_from(["1", "L", "LA", "I;16", "RGB", "RGBA", "P", "P+tRNS"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u8 = lambda *shape: rng.integers(0, 256, (height, width, *shape), dtype=np.uint8)  # noqa: E731
    if mode == "1":
        bits = rng.integers(0, 2, (height, width)).astype(bool)
        return Image.fromarray(bits), np.repeat((bits * 255).astype(np.uint8)[..., None], 3, 2)
    if mode == "L":
        grey = u8()
        return Image.fromarray(grey, "L"), np.repeat(grey[..., None], 3, 2)
    if mode == "I;16":
        wide = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        return Image.fromarray(wide), np.repeat(np.rint(wide / 257).astype(np.uint8)[..., None], 3, 2)
    if mode in ("LA", "RGBA"):
        channels = 1 if mode == "LA" else 3
        colour, alpha = u8(channels), u8(1)
        over_black = np.rint(colour * (alpha / 255)).astype(np.uint8)
        return Image.fromarray(np.concatenate([colour, alpha], 2), mode), np.repeat(
            over_black, 3 // channels, 2
        )
    if mode == "RGB":
        rgb = u8(3)
        return Image.fromarray(rgb, "RGB"), rgb
    colours = rng.integers(0, 256, (256, 3), dtype=np.uint8)
    index = rng.integers(0, 256, (height, width), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(colours.reshape(-1).tolist())
    expected = colours[index]
    if mode == "P+tRNS":
        key = int(index[0, 0])
        image.info["transparency"] = key
        expected = np.where((index == key)[..., None], 0, expected).astype(np.uint8)
    return image, expected


@given(pictures())
def test_every_mode_and_size_decodes_to_its_true_tones(case):
    image, expected = case
    np.testing.assert_array_equal(decode_rgb8(_encode(image, "PNG"), "ref"), expected)


@st.composite
def damaged(draw) -> bytes:
    """A valid PNG, JPEG or WebP with random bytes flipped, cut off, or inserted; or plain random bytes."""
    if draw(st.booleans()) and draw(st.booleans()):
        return draw(st.binary(max_size=200))
    image, _ = draw(pictures())
    fmt = draw(st.sampled_from(["PNG", "JPEG", "WEBP"]))
    data = bytearray(_encode(image.convert("RGB") if fmt != "PNG" else image, fmt))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[at:]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
    return bytes(data)


@given(damaged())
def test_damaged_or_random_bytes_give_pixels_or_a_named_error(data):
    try:
        pixels = decode_rgb8(data, "reference image 0 of 'cat'", max_pixels=4096 * 4096)
    except ImageDecodeError as error:
        message = str(error)
        assert message.startswith("reference image 0 of 'cat' ") and "BytesIO" not in message
        assert "\n" not in message
    else:
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.size > 0
