"""The server's request parser and the client's wire encoding under every input tensor, dtype, shape and
range edge: a request with exactly the values sent, or a named refusal; never a crash or a changed value."""

import io
import re

import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from serving import protocol as P
from serving.client import InvalidInputError, wire_array

LIMITS = P.ServingLimits(max_entities=3, max_references=2, max_image_pixels=32 * 32, max_prompt_chars=60)
WORDS = ["dog", "cat", "man", "ball"]
SCALARS = {  # name -> (limit low, limit high, default)
    P.FRAMES: (1, LIMITS.max_frames, LIMITS.default_frames),
    P.HEIGHT: (1, LIMITS.max_height, LIMITS.default_height),
    P.WIDTH: (1, LIMITS.max_width, LIMITS.default_width),
    P.STEPS: (1, LIMITS.max_steps, LIMITS.default_steps),
    P.GUIDANCE: (0.0, LIMITS.max_guidance, LIMITS.default_guidance),
    P.STEP_CACHE: (0.0, LIMITS.max_step_cache, 0.0),
    P.SEED: (0, 2**63 - 1, 0),
}
FLOATS = {P.GUIDANCE, P.STEP_CACHE}
DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    bool,
]


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def edge_values(name: str) -> st.SearchStrategy:
    """Values at and around the limits and at the ends of every dtype."""
    low, high, _ = SCALARS[name]
    if name in FLOATS:
        return st.one_of(
            st.sampled_from(
                [low, high, np.nextafter(np.float32(high), np.float32(np.inf)), -0.0, np.nan, np.inf]
            ),
            st.floats(width=32, allow_nan=True),
        )
    ends = [low, high, low - 1, high + 1, 0, -1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
    return st.one_of(st.sampled_from(ends), st.integers(-(2**63), 2**63 - 1))


@st.composite
def valid_requests(draw) -> tuple[dict, dict]:
    """A request inside every limit, with the values it must parse to."""
    words = draw(st.lists(st.sampled_from(WORDS), unique=True, max_size=LIMITS.max_entities))
    prompt = "a " + " and a ".join(words or ["scene"]) + draw(st.text(max_size=10).map(lambda t: " " + t))
    prompt = prompt[: LIMITS.max_prompt_chars]
    words = [w for w in words if w in prompt.split()]
    inputs = {P.PROMPT: np.array([[prompt.encode()]], dtype=np.object_)}
    expected: dict = {"prompt": prompt, "references": {}}
    if words:
        images, counts = [], []
        for word in words:
            count = draw(st.integers(1, LIMITS.max_references))
            pictures = [
                draw(st.integers(0, 2**32 - 1).map(
                    lambda s: np.random.default_rng(s).integers(0, 256, (1 + s % 32, 1 + s // 32 % 32, 3), dtype=np.uint8)))
                for _ in range(count)
            ]  # fmt: skip
            images += [png(p) for p in pictures]
            counts.append(count)
            expected["references"][word] = pictures
        inputs[P.ENTITY_WORDS] = np.array([[w.encode() for w in words]], dtype=np.object_)
        inputs[P.REFERENCE_IMAGES] = np.array([images], dtype=np.object_)
        inputs[P.REFERENCE_COUNTS] = np.array([counts], dtype=np.int32)
    for name, (low, high, default) in SCALARS.items():
        if draw(st.booleans()):
            if name in FLOATS:
                value = float(np.float32(draw(st.floats(low, high, width=32))))
            else:
                value = draw(st.one_of(st.sampled_from([low, high]), st.integers(low, high)))
            _, dtype, _, _ = P.INPUTS[name]
            inputs[name] = np.array([[value]], dtype=P.WIRE_DTYPES[dtype])
            expected[name] = value
        else:
            expected[name] = default
    return inputs, expected


@given(valid_requests())
def test_a_valid_request_parses_to_exactly_the_values_sent(case):
    inputs, expected = case
    parsed = P.parse_request(inputs, LIMITS)
    assert parsed.prompt == expected["prompt"]
    assert list(parsed.references) == list(expected["references"])
    for word, pictures in expected["references"].items():
        for got, sent in zip(parsed.references[word], pictures, strict=True):
            np.testing.assert_array_equal(got, sent)
    got = {name: getattr(parsed, name.lower()) for name in SCALARS}
    assert got == {name: expected[name] for name in SCALARS}


@st.composite
def mutated_requests(draw) -> dict:
    """A valid request with some tensors replaced: another dtype, shape or batch size, edge values,
    random or damaged bytes, words that are not in the prompt, counts that do not add up."""
    inputs, _ = draw(valid_requests())
    for name in draw(st.lists(st.sampled_from([*P.INPUTS, "EXTRA"]), min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["absent", "dtype", "shape", "edge", "bytes"]))
        if kind == "absent":
            inputs.pop(name, None)
        elif kind == "dtype" or (kind == "edge" and name not in SCALARS):
            dtype = draw(st.sampled_from(DTYPES))
            inputs[name] = np.array([[draw(st.integers(-5, 70))]]).astype(dtype)
        elif kind == "shape":
            shape = draw(st.lists(st.integers(0, 3), max_size=3))
            base = inputs.get(name, np.array([[b"dog"]], dtype=np.object_))
            inputs[name] = np.resize(base, shape) if base.size else np.zeros(shape, base.dtype)
        elif kind == "edge":
            _, dtype, _, _ = P.INPUTS[name]
            inputs[name] = np.array([[draw(edge_values(name))]]).astype(P.WIRE_DTYPES[dtype])
        else:
            values = draw(st.lists(st.binary(max_size=40), min_size=0, max_size=4))
            inputs[name] = np.array([values], dtype=np.object_).reshape(1, len(values))
    return inputs


@given(mutated_requests())
def test_a_mutated_request_is_refused_by_name_or_parses_to_the_values_sent(inputs):
    try:
        parsed = P.parse_request(inputs, LIMITS)
    except P.InvalidRequestError as error:
        message = str(error)
        assert message and "\n" not in message
        assert any(name in message for name in [*P.INPUTS, "EXTRA", "entity", "reference"]), message
        event(f"refused: {re.split(r'[ =,]', message)[0]}")
        return
    event("accepted")
    for name, (low, high, default) in SCALARS.items():
        value = getattr(parsed, name.lower())
        assert low <= value <= high
        if name in inputs:  # accepted only in its wire dtype, so what was sent is what is used
            _, dtype, _, _ = P.INPUTS[name]
            assert inputs[name].dtype == P.WIRE_DTYPES[dtype] and value == inputs[name].item()
        else:
            assert value == default


@given(st.sampled_from(list(SCALARS)), st.one_of(st.integers(), st.floats(), st.booleans()))
def test_the_client_sends_a_value_exactly_or_refuses_it(name, value):
    try:
        array = wire_array(name, value)
    except InvalidInputError as error:
        assert str(error).startswith(f"{name.lower()}=")
        return
    assert not isinstance(value, bool)
    if name in FLOATS:
        sent = float(value)  # a refused value is never converted, so this cannot overflow
        assert array.dtype == np.float32 and (np.isnan(sent) or array[0] == np.float32(sent))
        assert np.isfinite(array[0]) or not np.isfinite(sent)  # a finite value never arrives as infinity
    else:
        assert isinstance(value, int) and array.item() == value
