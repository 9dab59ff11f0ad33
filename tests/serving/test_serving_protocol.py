"""Request validation without a server: every refusal names the input and the limit."""

import numpy as np
import pytest

from serving import protocol as P
from serving.media import decode_mp4, encode_mp4

LIMITS = P.ServingLimits(max_entities=2, max_references=2, max_image_pixels=100 * 100, max_frames=16)


def strings(*values: bytes) -> np.ndarray:
    return np.array([list(values)], dtype=np.object_)


def request(prompt=b"a dog and a man play", refs=None, **scalars) -> dict:
    inputs = {P.PROMPT: strings(prompt)}
    if refs is not None:
        words, images, counts = refs
        inputs[P.ENTITY_WORDS] = strings(*words)
        inputs[P.REFERENCE_IMAGES] = strings(*images)
        inputs[P.REFERENCE_COUNTS] = np.array([counts], dtype=np.int32)
    for name, (value, dtype) in scalars.items():
        inputs[name] = np.array([[value]], dtype=dtype)
    return inputs


def test_valid_request_decodes_images_in_word_order(make_png):
    dog, man = make_png(40, 48, seed=1), make_png(20, 30, seed=2)
    parsed = P.parse_request(
        request(refs=([b"dog", b"man"], [dog, man], [1, 1]), FRAMES=(8, np.int32), SEED=(7, np.int64)), LIMITS
    )
    assert list(parsed.references) == ["dog", "man"]
    assert parsed.references["dog"][0].shape == (40, 48, 3) and parsed.references["man"][0].shape == (
        20,
        30,
        3,
    )
    assert (parsed.frames, parsed.height, parsed.seed, parsed.steps) == (8, LIMITS.default_height, 7, 20)


def test_plural_of_entity_word_counts_as_present(make_png):
    parsed = P.parse_request(request(b"two dogs run", refs=([b"dog"], [make_png()], [1])), LIMITS)
    assert list(parsed.references) == ["dog"]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (lambda png, bomb: request(b"   "), "PROMPT is empty"),
        (lambda png, bomb: request(b"a \xff dog"), "PROMPT is not valid UTF-8"),
        (lambda png, bomb: request(b"x" * 1001), "the limit is 1000"),
        (lambda png, bomb: request(refs=([b"cat"], [png()], [1])), "'cat' does not occur in the prompt"),
        (
            lambda png, bomb: request(refs=([b"dog", b"man", b"play"], [png()] * 3, [1, 1, 1])),
            "the limit is 2",
        ),
        (
            lambda png, bomb: request(refs=([b"dog"], [png()] * 3, [3])),
            "has 3 reference images; expected 1 to 2",
        ),
        (
            lambda png, bomb: request(refs=([b"dog"], [png()] * 2, [1])),
            "sums to 1 but REFERENCE_IMAGES holds 2",
        ),
        (lambda png, bomb: request(refs=([b"dog"], [b"not an image"], [1])), "is not a PNG/JPEG/WEBP image"),
        (lambda png, bomb: request(refs=([b"dog"], [b""], [1])), "is empty"),
        (
            lambda png, bomb: request(refs=([b"dog"], [png(101, 100)], [1])),
            "10100 pixels; the limit is 10000",
        ),
        (lambda png, bomb: request(refs=([b"dog"], [bomb(5000, 5000)], [1])), "5000x5000 = 25000000 pixels"),
        (
            lambda png, bomb: request(refs=([b"dog"], [bomb(60000, 60000)], [1])),
            "declares more than 10000 pixels",
        ),
        (lambda png, bomb: request(FRAMES=(17, np.int32)), "FRAMES=17 is out of range"),
        (lambda png, bomb: request(STEPS=(0, np.int32)), "STEPS=0 is out of range"),
        (lambda png, bomb: request(GUIDANCE=(np.nan, np.float32)), "must be a finite number"),
        (
            lambda png, bomb: request(STEP_CACHE=(np.inf, np.float32)),
            "STEP_CACHE=inf must be a finite number",
        ),
        (lambda png, bomb: request(STEP_CACHE=(-0.5, np.float32)), "STEP_CACHE=-0.5 is out of range"),
        (lambda png, bomb: {P.PROMPT: np.array([[b"a"], [b"b"]], dtype=np.object_)}, "batch size 2"),
        (lambda png, bomb: {**request(), P.ENTITY_WORDS: strings(b"dog")}, "go together"),
    ],
)
def test_bad_request_is_refused_with_a_reason(inputs, expected, make_png, make_bomb):
    with pytest.raises(P.InvalidRequestError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        P.parse_request(inputs(make_png, make_bomb), LIMITS)


def test_bomb_is_refused_before_decoding(make_bomb, monkeypatch):
    """The pixel limit comes from the header: decoding a 60000^2 image would need 10 GB."""
    from PIL import ImageFile

    def fail(*_):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", fail)
    for side in (5000, 60000):
        with pytest.raises(P.InvalidRequestError, match="pixels"):
            P.decode_image(make_bomb(side, side), LIMITS, "reference")


def test_only_step_cached_requests_are_kept_out_of_shared_batches():
    plain = [P.parse_request(request(), LIMITS) for _ in range(2)]
    cached = [P.parse_request(request(STEP_CACHE=(0.3, np.float32)), LIMITS) for _ in range(2)]
    assert plain[0].step_cache == 0.0 and cached[0].step_cache == pytest.approx(0.3)
    assert plain[0].batch_key() == plain[1].batch_key()
    assert cached[0].batch_key() != cached[1].batch_key()


def test_limits_round_trip_through_config_parameters():
    limits = P.ServingLimits(max_entities=3, max_guidance=12.5)
    assert P.ServingLimits.from_parameters(limits.to_parameters()) == limits


@pytest.mark.parametrize("size", [(16, 24), (128, 130)])  # under and over ONE_THREAD_PIXELS: both encoders
def test_mp4_holds_every_frame(size):
    video = np.full((6, *size, 3), 90, dtype=np.uint8)
    decoded = decode_mp4(encode_mp4(video, fps=8))
    assert decoded.shape == video.shape
    assert np.abs(decoded.astype(int) - 90).max() <= 2


def test_sixteen_bit_reference_keeps_its_tones():
    """A 16-bit greyscale PNG used to come back 99.7% white (Pillow clips 16-bit values to 255)."""
    import io

    from PIL import Image

    tones = np.linspace(0, 255, 40 * 48).reshape(40, 48).round().astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(tones * 257).save(buffer, format="PNG")
    parsed = P.parse_request(request(b"a dog", refs=([b"dog"], [buffer.getvalue()], [1])), LIMITS)
    np.testing.assert_array_equal(parsed.references["dog"][0], np.repeat(tones[..., None], 3, axis=2))


@pytest.mark.parametrize(
    ("name", "array", "expected"),
    [
        (P.FRAMES, np.array([[8]], dtype=np.int64), "FRAMES must be INT32; got int64"),
        (P.FRAMES, np.array([[8.7]], dtype=np.float32), "FRAMES must be INT32; got float32"),
        (P.SEED, np.array([[1]], dtype=np.uint64), "SEED must be INT64; got uint64"),
        (P.GUIDANCE, np.array([[4.0]], dtype=np.float64), "GUIDANCE must be FP32; got float64"),
        (P.STEPS, np.array([[1, 2]], dtype=np.int32), r"STEPS has shape \[1, 2\]; expected \[batch, 1\]"),
        (P.STEPS, np.array([1], dtype=np.int32), r"STEPS has shape \[1\]; expected \[batch, 1\]"),
        (P.REFERENCE_IMAGES, np.array([[5]], dtype=np.object_), "REFERENCE_IMAGES must hold bytes"),
        ("EXTRA", np.array([[1]], dtype=np.int32), "unknown input 'EXTRA'"),
    ],
)
def test_a_tensor_of_the_wrong_dtype_or_shape_is_refused_not_cast(name, array, expected):
    """int(8.7) would silently run 8 frames; bytes(5) would be five zero bytes."""
    inputs = request()
    inputs[name] = array
    if name == P.REFERENCE_IMAGES:
        inputs |= {P.ENTITY_WORDS: strings(b"dog"), P.REFERENCE_COUNTS: np.array([[1]], dtype=np.int32)}
    with pytest.raises(P.InvalidRequestError, match=expected):
        P.parse_request(inputs, LIMITS)
