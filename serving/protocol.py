"""The wire contract of the served model: tensor names, limits, and request validation.

Shared by the Triton backend (which validates every request before it touches the model), the
export step (which writes the limits into `config.pbtxt`) and the client SDK (which builds the
tensors and checks that every value fits its wire dtype). It imports numpy and `model.images` (and,
lazily, the model's own entity-word matcher), so the exported repository carries a copy of it next to
its copy of `model/`.

Every tensor carries Triton's leading batch dimension; a request holds exactly one generation, and
the server's dynamic batcher groups requests itself.

| name | dtype | shape (after batch) | required | meaning |
|---|---|---|---|---|
| PROMPT | BYTES | [1] | yes | UTF-8 prompt |
| ENTITY_WORDS | BYTES | [N] | no | words of the prompt that get references |
| REFERENCE_IMAGES | BYTES | [K] | no | encoded PNG/JPEG/WebP, all images of word 0, then word 1, ... |
| REFERENCE_COUNTS | INT32 | [N] | no | images per word, sums to K |
| BACKGROUND | BYTES | [1] | no | encoded background image |
| FRAMES, HEIGHT, WIDTH | INT32 | [1] | no | video size (default: the preset's) |
| STEPS | INT32 | [1] | no | sampler steps |
| GUIDANCE | FP32 | [1] | no | classifier-free guidance scale |
| STEP_CACHE | FP32 | [1] | no | step-cache threshold: 0 (default) samples every step exactly, > 0 trades exactness for speed |
| SEED | INT64 | [1] | no | noise seed |
| VIDEO (out) | UINT8 | [T, H, W, 3] | | frames |
| MP4 (out) | BYTES | [1] | | H.264 MP4 of the frames |
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from model.images import ImageDecodeError, decode_rgb8

PROMPT = "PROMPT"
ENTITY_WORDS = "ENTITY_WORDS"
REFERENCE_IMAGES = "REFERENCE_IMAGES"
REFERENCE_COUNTS = "REFERENCE_COUNTS"
BACKGROUND = "BACKGROUND"
FRAMES = "FRAMES"
HEIGHT = "HEIGHT"
WIDTH = "WIDTH"
STEPS = "STEPS"
GUIDANCE = "GUIDANCE"
STEP_CACHE = "STEP_CACHE"
SEED = "SEED"
VIDEO = "VIDEO"
MP4 = "MP4"

# name -> (Triton config dtype, client dtype, dims after the batch dimension, optional)
INPUTS: dict[str, tuple[str, str, list[int], bool]] = {
    PROMPT: ("TYPE_STRING", "BYTES", [1], False),
    ENTITY_WORDS: ("TYPE_STRING", "BYTES", [-1], True),
    REFERENCE_IMAGES: ("TYPE_STRING", "BYTES", [-1], True),
    REFERENCE_COUNTS: ("TYPE_INT32", "INT32", [-1], True),
    BACKGROUND: ("TYPE_STRING", "BYTES", [1], True),
    FRAMES: ("TYPE_INT32", "INT32", [1], True),
    HEIGHT: ("TYPE_INT32", "INT32", [1], True),
    WIDTH: ("TYPE_INT32", "INT32", [1], True),
    STEPS: ("TYPE_INT32", "INT32", [1], True),
    GUIDANCE: ("TYPE_FP32", "FP32", [1], True),
    STEP_CACHE: ("TYPE_FP32", "FP32", [1], True),
    SEED: ("TYPE_INT64", "INT64", [1], True),
}
OUTPUTS: dict[str, tuple[str, list[int]]] = {
    VIDEO: ("TYPE_UINT8", [-1, -1, -1, 3]),
    MP4: ("TYPE_STRING", [1]),
}

WIRE_DTYPES = {"INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64), "FP32": np.dtype(np.float32)}


class InvalidRequestError(ValueError):
    """A request the server refuses; the message is sent back to the caller verbatim."""


@dataclass
class ServingLimits:
    """What one request may ask for. Written into config.pbtxt parameters at export."""

    max_prompt_chars: int = 1000
    max_entities: int = 4
    max_references: int = 3  # images per entity word
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 2048 * 2048  # checked from the header before any pixel is decoded
    max_frames: int = 16
    max_height: int = 64
    max_width: int = 64
    max_steps: int = 100
    max_guidance: float = 30.0
    max_step_cache: float = 5.0  # a threshold this high already skips nearly every step
    default_frames: int = 8
    default_height: int = 32
    default_width: int = 32
    default_steps: int = 20
    default_guidance: float = 4.0
    fps: int = 8

    def to_parameters(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}

    @classmethod
    def from_parameters(cls, params: dict[str, str]) -> ServingLimits:
        kwargs = {}
        for f in fields(cls):
            if f.name in params:
                kwargs[f.name] = float(params[f.name]) if f.type in ("float", float) else int(params[f.name])
        return cls(**kwargs)


@dataclass
class ValidatedRequest:
    """One request that passed every check, in the types `Generator.generate` takes (the model's own
    `GenerationRequest` holds only what may differ between requests that share one batched solve)."""

    prompt: str
    references: dict[str, list[np.ndarray]]
    background: np.ndarray | None
    frames: int
    height: int
    width: int
    steps: int
    guidance: float
    seed: int
    step_cache: float = 0.0

    def batch_key(self) -> tuple:
        """Requests with equal keys can share one batched sampler call. A request with the step cache on is
        sampled alone: the cache decides to skip a step for its whole batch, so neighbours would change each
        other's videos."""
        alone = id(self) if self.step_cache > 0 else None
        return (self.frames, self.height, self.width, self.steps, self.guidance, alone)


def decode_image(data: bytes, limits: ServingLimits, what: str) -> np.ndarray:
    """Encoded image -> uint8 [H, W, 3] by the shared decoder; byte and pixel limits come before decoding."""
    if len(data) > limits.max_image_bytes:
        raise InvalidRequestError(f"{what} is {len(data)} bytes; the limit is {limits.max_image_bytes} bytes")
    try:
        return decode_rgb8(data, what, limits.max_image_pixels)
    except ImageDecodeError as exc:
        raise InvalidRequestError(str(exc)) from exc


def check_tensors(inputs: dict[str, np.ndarray | None]) -> None:
    """Every tensor has its wire dtype and shape: Triton checks this against config.pbtxt, but the
    parser is the contract, so a value that does not fit its type is refused here for any caller too."""
    for name, value in inputs.items():
        if name not in INPUTS:
            raise InvalidRequestError(f"unknown input {name!r}; expected some of {sorted(INPUTS)}")
        if value is None:
            continue
        _, dtype, dims, _ = INPUTS[name]
        if not isinstance(value, np.ndarray):
            raise InvalidRequestError(f"{name} must be an array; got {type(value).__name__}")
        if value.ndim != 1 + len(dims) or any(d != -1 and d != n for d, n in zip(dims, value.shape[1:])):
            shape = ", ".join("N" if d == -1 else str(d) for d in dims)
            raise InvalidRequestError(f"{name} has shape {list(value.shape)}; expected [batch, {shape}]")
        if value.shape[0] != 1:
            raise InvalidRequestError(
                f"{name} has batch size {value.shape[0]}; send one generation per request "
                f"(batch size 1), the server batches requests itself"
            )
        if dtype == "BYTES":
            if value.dtype.kind not in "OS" or not all(isinstance(v, bytes) for v in value.reshape(-1)):
                raise InvalidRequestError(f"{name} must hold bytes (BYTES); got {value.dtype}")
        elif value.dtype != WIRE_DTYPES[dtype]:
            raise InvalidRequestError(f"{name} must be {dtype}; got {value.dtype}")


def _single(inputs: dict[str, np.ndarray | None], name: str, default):
    """The one value of a [1, 1] scalar input, or the default when it is absent."""
    value = inputs.get(name)
    if value is None:
        return default
    if value.size != 1:
        raise InvalidRequestError(f"{name} must hold exactly one value; got shape {list(value.shape)}")
    item = value.reshape(-1)[0]
    return item.decode("utf-8") if isinstance(item, bytes) else item.item()


def _row(inputs: dict[str, np.ndarray | None], name: str) -> np.ndarray | None:
    value = inputs.get(name)
    return None if value is None else value.reshape(-1)


def _in_range(name: str, value: int | float, low: int | float, high: int | float) -> None:
    if not math.isfinite(value):  # NaN and infinity are named for what they are, not as out of range
        raise InvalidRequestError(f"{name}={value} must be a finite number")
    if not (low <= value <= high):
        raise InvalidRequestError(f"{name}={value} is out of range; expected {low} <= {name} <= {high}")


def _text(item: bytes | str, name: str) -> str:
    try:
        return item.decode("utf-8") if isinstance(item, bytes) else str(item)
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(f"{name} is not valid UTF-8 ({exc})") from exc


def parse_request(inputs: dict[str, np.ndarray | None], limits: ServingLimits) -> ValidatedRequest:
    """Validate raw input tensors (name -> array with batch dim, None when absent) into a request."""
    check_tensors(inputs)
    prompt_array = _row(inputs, PROMPT)
    if prompt_array is None or prompt_array.size != 1:
        raise InvalidRequestError(f"{PROMPT} must hold exactly one string")
    prompt = _text(prompt_array[0], PROMPT)
    if not prompt.strip():
        raise InvalidRequestError(f"{PROMPT} is empty; expected a non-empty text prompt")
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidRequestError(
            f"{PROMPT} has {len(prompt)} characters; the limit is {limits.max_prompt_chars}"
        )

    references = _parse_references(inputs, prompt, limits)
    background = None
    background_array = _row(inputs, BACKGROUND)
    if background_array is not None:
        if background_array.size != 1:
            raise InvalidRequestError(f"{BACKGROUND} must hold one image; got {background_array.size}")
        background = decode_image(bytes(background_array[0]), limits, BACKGROUND)

    frames = int(_single(inputs, FRAMES, limits.default_frames))
    height = int(_single(inputs, HEIGHT, limits.default_height))
    width = int(_single(inputs, WIDTH, limits.default_width))
    steps = int(_single(inputs, STEPS, limits.default_steps))
    guidance = float(_single(inputs, GUIDANCE, limits.default_guidance))
    seed = int(_single(inputs, SEED, 0))
    step_cache = float(_single(inputs, STEP_CACHE, 0.0))
    _in_range(FRAMES, frames, 1, limits.max_frames)
    _in_range(HEIGHT, height, 1, limits.max_height)
    _in_range(WIDTH, width, 1, limits.max_width)
    _in_range(STEPS, steps, 1, limits.max_steps)
    _in_range(GUIDANCE, guidance, 0.0, limits.max_guidance)
    _in_range(SEED, seed, 0, 2**63 - 1)
    _in_range(STEP_CACHE, step_cache, 0.0, limits.max_step_cache)
    return ValidatedRequest(
        prompt, references, background, frames, height, width, steps, guidance, seed, step_cache
    )


def _parse_references(
    inputs: dict[str, np.ndarray | None], prompt: str, limits: ServingLimits
) -> dict[str, list[np.ndarray]]:
    words_array = _row(inputs, ENTITY_WORDS)
    images_array = _row(inputs, REFERENCE_IMAGES)
    counts_array = _row(inputs, REFERENCE_COUNTS)
    given = {ENTITY_WORDS: words_array, REFERENCE_IMAGES: images_array, REFERENCE_COUNTS: counts_array}
    present = [name for name, array in given.items() if array is not None]
    if not present:
        return {}
    if len(present) != 3:
        raise InvalidRequestError(
            f"{ENTITY_WORDS}, {REFERENCE_IMAGES} and {REFERENCE_COUNTS} go together; got only {', '.join(present)}"
        )
    words = [_text(w, ENTITY_WORDS).strip() for w in words_array]
    counts = [int(c) for c in counts_array]
    if len(words) > limits.max_entities:
        raise InvalidRequestError(f"{len(words)} entity words given; the limit is {limits.max_entities}")
    if len(counts) != len(words):
        raise InvalidRequestError(
            f"{REFERENCE_COUNTS} has {len(counts)} entries but {ENTITY_WORDS} has {len(words)}; expected one per word"
        )
    if sum(counts) != len(images_array):
        raise InvalidRequestError(
            f"{REFERENCE_COUNTS} sums to {sum(counts)} but {REFERENCE_IMAGES} holds {len(images_array)} images"
        )
    if len(set(w.lower() for w in words)) != len(words):
        raise InvalidRequestError(f"{ENTITY_WORDS} has duplicates: {words}")
    references: dict[str, list[np.ndarray]] = {}
    start = 0
    for word, count in zip(words, counts):
        if not word:
            raise InvalidRequestError(f"{ENTITY_WORDS} holds an empty word")
        if not 1 <= count <= limits.max_references:
            raise InvalidRequestError(
                f"entity {word!r} has {count} reference images; expected 1 to {limits.max_references}"
            )
        if not _word_in_prompt(word, prompt):
            raise InvalidRequestError(f"entity word {word!r} does not occur in the prompt {prompt!r}")
        references[word] = [
            decode_image(bytes(images_array[start + i]), limits, f"reference image {i} of {word!r}")
            for i in range(count)
        ]
        start += count
    return references


def _word_in_prompt(word: str, prompt: str) -> bool:
    """Same test the model's entity binding applies (whole word, case- and plural-tolerant)."""
    from model.binding import EntityWordNotFoundError, find_word_span

    try:
        find_word_span(prompt, word)
    except EntityWordNotFoundError:
        return False
    return True
