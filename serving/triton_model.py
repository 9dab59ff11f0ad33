"""Triton Python-backend model for Video Alchemist; export copies this file to `<version>/model.py`.

The version folder is self-contained: `src/` holds a snapshot of the `model/` package and of the
serving protocol taken at export time, `checkpoint/` the weights, `encoders/` the pretrained encoder
folders the checkpoint's config names (`encoders.json` maps each recorded location to its copy).
`src/` goes first on `sys.path`, so the code that serves is the code the checkpoint was exported
with, whatever else is installed.
(`model/` cannot sit directly beside this file: the stub imports `<version>.model`, and a package
folder named `model` would shadow this module.)

Every request is validated before it reaches the model; a bad request gets its own INVALID_ARG
error with a message naming the input, while other requests of the same batch still run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

_SRC = Path(__file__).resolve().parent / "src"
if str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

from serving import protocol as P  # noqa: E402
from serving.media import encode_mp4  # noqa: E402


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        import torch

        from model.generator import Generator

        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        self.limits = P.ServingLimits.from_parameters(params)
        device = "cpu"
        if args["model_instance_kind"] == "GPU" and torch.cuda.is_available():
            device = f"cuda:{args['model_instance_device_id']}"
        version_dir = Path(__file__).resolve().parent
        mapping_file = version_dir / "encoders.json"
        bundled = json.loads(mapping_file.read_text()) if mapping_file.is_file() else {}

        def locate(location: str) -> str:
            return str(version_dir / bundled[location]) if location in bundled else location

        started = time.perf_counter()
        self.generator = Generator.from_pretrained(
            str(version_dir / "checkpoint"), device=device, locate=locate
        )
        self.logger = pb_utils.Logger
        seconds = time.perf_counter() - started
        self.logger.log_info(
            f"{args['model_name']} v{args['model_version']} loaded on {device} in {seconds:.1f} s"
        )

    def _inputs(self, request) -> dict[str, np.ndarray | None]:
        arrays = {}
        for name in P.INPUTS:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            arrays[name] = None if tensor is None else tensor.as_numpy()
        return arrays

    def _generate_group(self, group: list[P.ValidatedRequest]) -> list[np.ndarray]:
        """One batched sampler call for requests that share size, steps and guidance."""
        from model.generator import GenerationRequest
        from model.sampler import StepCache

        first = group[0]
        return self.generator.generate_batch(
            [GenerationRequest(r.prompt, r.references, r.background, r.seed) for r in group],
            frames=first.frames,
            height=first.height,
            width=first.width,
            steps=first.steps,
            guidance=first.guidance,
            step_cache=StepCache(first.step_cache) if first.step_cache > 0 else None,
        )

    def _response(self, request, video: np.ndarray):
        outputs = [pb_utils.Tensor(P.VIDEO, np.ascontiguousarray(video[None]))]
        if P.MP4 in request.requested_output_names():  # callers that want frames only skip the encode
            mp4 = encode_mp4(video, fps=self.limits.fps)
            outputs.append(pb_utils.Tensor(P.MP4, np.array([[mp4]], dtype=np.object_)))
        return pb_utils.InferenceResponse(outputs)

    def _error(self, exc: Exception):
        if isinstance(exc, ValueError):  # bad input, named by the protocol or by the model's own checks
            return pb_utils.InferenceResponse(
                error=pb_utils.TritonError(str(exc), pb_utils.TritonError.INVALID_ARG)
            )
        self.logger.log_error(f"generation failed: {type(exc).__name__}: {exc}")  # the server stays up
        return pb_utils.InferenceResponse(
            error=pb_utils.TritonError(f"generation failed: {type(exc).__name__}: {exc}")
        )

    def execute(self, requests: list) -> list:
        """Validate every request, then sample each group of compatible requests in one batched call.
        A group whose batched call fails is retried request by request, so one bad request cannot
        fail its neighbours."""
        responses: list = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, P.ValidatedRequest]]] = {}
        for index, request in enumerate(requests):
            try:
                parsed = P.parse_request(self._inputs(request), self.limits)
                groups.setdefault(parsed.batch_key(), []).append((index, parsed))
            except Exception as exc:
                responses[index] = self._error(exc)
        for members in groups.values():
            try:
                videos = self._generate_group([parsed for _, parsed in members])
            except Exception:
                videos = None
            for position, (index, parsed) in enumerate(members):
                try:
                    video = videos[position] if videos is not None else self._generate_group([parsed])[0]
                    responses[index] = self._response(requests[index], video)
                except Exception as exc:
                    responses[index] = self._error(exc)
        return responses

    def finalize(self) -> None:
        self.generator = None
