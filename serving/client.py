"""Client SDK for the served Video Alchemist model, over tritonclient HTTP or gRPC.

>>> with AlchemistClient("localhost:8000") as client:
...     video = client.generate("a dog runs on a beach", references={"dog": ["dog.jpg"]}, seed=1)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from model.images import ImageDecodeError, decode_rgb8, to_rgb8
from serving import protocol as P
from serving.media import encode_png

ImageLike = str | Path | bytes | np.ndarray | Image.Image

# Status strings tritonclient reports for "try again later" (HTTP code / gRPC status name).
_RETRYABLE = {"503", "502", "504", "StatusCode.UNAVAILABLE", "StatusCode.RESOURCE_EXHAUSTED"}
_REJECTED = {
    "400",
    "404",
    "413",
    "StatusCode.INVALID_ARGUMENT",
    "StatusCode.NOT_FOUND",
    "StatusCode.OUT_OF_RANGE",
}


class ClientError(RuntimeError):
    """Base of every error the SDK raises."""


class ServerRejectedError(ClientError, ValueError):
    """The server refused the request as invalid; `message` is the server's own explanation."""

    def __init__(self, message: str, status: str | None) -> None:
        super().__init__(f"server rejected the request ({status}): {message}")
        self.message = message
        self.status = status


class InvalidInputError(ClientError, ValueError):
    """The client refused an input before sending anything: an image that does not decode, a value
    that does not fit its wire dtype, text that is not valid Unicode."""


class ServerUnavailableError(ClientError):
    """The server could not be reached or stayed unavailable through every retry."""


class ServerError(ClientError):
    """The server failed while handling a valid request."""


@dataclass
class GeneratedVideo:
    video: np.ndarray  # uint8 [T, H, W, 3]
    mp4: bytes  # empty when not requested
    latency_s: float

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.mp4)
        return path


def image_bytes(image: ImageLike, what: str) -> bytes:
    """Path -> its file bytes as they are, once they decode here, so an error names the file; bytes as
    they are (the server decodes them and names the reference); array/PIL -> PNG of its 8-bit RGB
    pixels (lossless, so the server sees the exact pixels)."""
    if isinstance(image, bytes):
        return image
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(f"{what}: no image file at {path}")
        data = path.read_bytes()
        try:
            decode_rgb8(data, f"{what} ({path})")
        except ImageDecodeError as exc:
            raise InvalidInputError(str(exc)) from exc
        return data
    if isinstance(image, Image.Image):
        return encode_png(to_rgb8(image, what))
    if isinstance(image, np.ndarray):
        return encode_png(image)
    raise TypeError(f"{what}: expected a path, bytes, uint8 array or PIL image; got {type(image).__name__}")


def wire_array(name: str, value: object) -> np.ndarray:
    """`value` as a one-element array of `name`'s wire dtype. A value outside the dtype's range (numpy
    would wrap 4294967297 to 1 and turn 1e39 into infinity) or of the wrong kind (8.5 frames would send 8)
    is refused before anything is sent, named as it was given."""
    _, dtype, _, _ = P.INPUTS[name]
    wire = P.WIRE_DTYPES[dtype]
    if wire.kind == "f":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InvalidInputError(f"{name.lower()}={value!r} must be a number")
        largest = float(np.finfo(wire).max)
        if abs(value) > largest and not (isinstance(value, float) and math.isinf(value)):
            raise InvalidInputError(f"{name.lower()}={value!r} does not fit {dtype} (at most {largest:.4g})")
        return np.array([value], dtype=wire)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InvalidInputError(f"{name.lower()}={value!r} must be a whole number")
    bounds = np.iinfo(wire)
    if not bounds.min <= value <= bounds.max:
        raise InvalidInputError(f"{name.lower()}={value} does not fit {dtype} ({bounds.min} to {bounds.max})")
    return np.array([value], dtype=wire)


class AlchemistClient:
    """Generate personalized videos on a Triton server; retries with exponential backoff on 503/unavailable."""

    def __init__(
        self,
        url: str,
        protocol: Literal["http", "grpc"] = "http",
        model_name: str = "video_alchemist",
        model_version: str = "",
        timeout_s: float = 600.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ) -> None:
        if protocol not in ("http", "grpc"):
            raise ValueError(f"protocol={protocol!r}; expected 'http' or 'grpc'")
        self.url = url.removeprefix("http://").removeprefix("grpc://")
        self.protocol = protocol
        self.model_name = model_name
        self.model_version = model_version
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        if protocol == "http":
            import tritonclient.http as module

            self._client = module.InferenceServerClient(
                self.url, connection_timeout=timeout_s, network_timeout=timeout_s
            )
        else:
            import tritonclient.grpc as module

            self._client = module.InferenceServerClient(self.url)
        self._module = module

    # tensors -----------------------------------------------------------------------------
    def _tensor(self, name: str, value: np.ndarray):
        _, dtype, _, _ = P.INPUTS[name]
        array = value.reshape(1, -1)  # leading batch dimension of 1
        tensor = self._module.InferInput(name, list(array.shape), dtype)
        if self.protocol == "http":
            tensor.set_data_from_numpy(array, binary_data=True)
        else:
            tensor.set_data_from_numpy(array)
        return tensor

    def build_inputs(
        self,
        prompt: str,
        references: dict[str, list[ImageLike]] | None = None,
        background: ImageLike | None = None,
        frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int = 0,
        step_cache: float | None = None,
    ) -> list:
        """Request tensors; omitted options fall back to the server's defaults (`step_cache`: off, the
        exact video; a threshold > 0 skips slow steps, `model/README.md`)."""
        arrays: dict[str, np.ndarray] = {P.PROMPT: np.array([_utf8(prompt, "prompt")], dtype=np.object_)}
        if references:
            words, images, counts = [], [], []
            for word, refs in references.items():
                refs = list(refs) if isinstance(refs, (list, tuple)) else [refs]
                words.append(_utf8(word, f"entity word {word!r}"))
                counts.append(len(refs))
                images += [image_bytes(r, f"reference {i} of {word!r}") for i, r in enumerate(refs)]
            arrays[P.ENTITY_WORDS] = np.array(words, dtype=np.object_)
            arrays[P.REFERENCE_IMAGES] = np.array(images, dtype=np.object_)
            arrays[P.REFERENCE_COUNTS] = np.array(counts, dtype=np.int32)
        if background is not None:
            arrays[P.BACKGROUND] = np.array([image_bytes(background, "background")], dtype=np.object_)
        # A step cache of 0 is the server's default: not sent, so repositories exported before it accept the call.
        scalars = {
            P.FRAMES: frames,
            P.HEIGHT: height,
            P.WIDTH: width,
            P.STEPS: steps,
            P.GUIDANCE: guidance,
            P.STEP_CACHE: step_cache or None,
            P.SEED: seed,
        }
        for name, value in scalars.items():
            if value is not None:
                arrays[name] = wire_array(name, value)
        return [self._tensor(name, array) for name, array in arrays.items()]

    # calls -------------------------------------------------------------------------------
    def infer(self, inputs: list, outputs: tuple[str, ...] = tuple(P.OUTPUTS)):
        """Send prepared tensors; retry while the server is unavailable, map errors to SDK errors."""
        from http.client import HTTPException

        from tritonclient.utils import InferenceServerException

        if self.protocol == "http":
            requested = [self._module.InferRequestedOutput(n, binary_data=True) for n in outputs]
            kwargs = {}
        else:
            requested = [self._module.InferRequestedOutput(n) for n in outputs]
            kwargs = {"client_timeout": self.timeout_s}
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                return self._client.infer(
                    self.model_name, inputs, model_version=self.model_version, outputs=requested, **kwargs
                )
            except InferenceServerException as exc:
                status = exc.status()
                if status in _REJECTED:
                    raise ServerRejectedError(exc.message() or str(exc), status) from exc
                if status in _RETRYABLE or (status is None and _looks_unreachable(exc)):
                    last = exc
                    continue
                if status == "StatusCode.DEADLINE_EXCEEDED":
                    raise ServerError(f"no answer within {self.timeout_s} s: {exc.message()}") from exc
                raise ServerError(f"server failed ({status}): {exc.message() or exc}") from exc
            except HTTPException as exc:  # e.g. geventhttpclient's HTTPParseError: an answer that is not HTTP
                raise ClientError(
                    f"{self.url} does not speak HTTP on that port ({type(exc).__name__}: {exc}); "
                    "is it the gRPC port? Use protocol 'grpc' there, or the server's HTTP port"
                ) from exc
            except TimeoutError as exc:  # a slow generation is not a reason to start it again
                raise ServerError(f"no answer within {self.timeout_s} s from {self.url}") from exc
            except (ConnectionError, OSError) as exc:
                last = exc
        raise ServerUnavailableError(
            f"{self.protocol}://{self.url} unavailable after {self.retries + 1} attempts: {last}"
        ) from last

    def generate_video(self, prompt: str, with_mp4: bool = True, **options) -> GeneratedVideo:
        """Frames (and MP4 bytes unless with_mp4=False) of one generation; options as in `build_inputs`."""
        start = time.perf_counter()
        outputs = (P.VIDEO, P.MP4) if with_mp4 else (P.VIDEO,)
        result = self.infer(self.build_inputs(prompt, **options), outputs)
        video = result.as_numpy(P.VIDEO)[0]
        mp4 = bytes(result.as_numpy(P.MP4).reshape(-1)[0]) if with_mp4 else b""
        return GeneratedVideo(video=video, mp4=mp4, latency_s=time.perf_counter() - start)

    def generate(self, prompt: str, **options) -> np.ndarray:
        """uint8 [T, H, W, 3] frames of one generation (the server skips the MP4 encode)."""
        return self.generate_video(prompt, with_mp4=False, **options).video

    def is_ready(self) -> bool:
        try:
            return bool(self._client.is_model_ready(self.model_name, self.model_version))
        except Exception:  # unreachable counts as not ready
            return False

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> AlchemistClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _looks_unreachable(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(
        s in text for s in ("connection refused", "failed to connect", "unavailable", "connect failed")
    )


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate, e.g. from a badly decoded file name
        raise InvalidInputError(f"{what} is not valid Unicode text ({exc.reason} at {exc.start})") from exc
