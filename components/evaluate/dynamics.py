"""Dync-D: is a video dynamic? Optical flow between frames sampled at ~8 fps, thresholded.

The protocol is the public code's `DistributedDynamicDegree`; the flow estimator is pluggable. The
reference uses RAFT (needs torchvision); `FarnebackFlow` is a weight-free OpenCV alternative and is
labelled as such in every report (`evaluator.flow=farneback`), because its magnitudes are not RAFT's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class FlowBackend(Protocol):
    """Dense flow [H', W', 2] (pixels) from frame1 to frame2, both uint8 [H, W, 3]."""

    name: str

    def __call__(self, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray: ...


@dataclass
class FarnebackFlow:
    """OpenCV Farneback dense flow on grey frames (weight-free; parameters are OpenCV's documented example)."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2
    name: str = "farneback"

    def __call__(self, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
        import cv2

        g1 = cv2.cvtColor(np.ascontiguousarray(frame1[:, :, :3]), cv2.COLOR_RGB2GRAY)
        g2 = cv2.cvtColor(np.ascontiguousarray(frame2[:, :, :3]), cv2.COLOR_RGB2GRAY)
        return cv2.calcOpticalFlowFarneback(
            g1,
            g2,
            None,
            self.pyr_scale,
            self.levels,
            self.winsize,
            self.iterations,
            self.poly_n,
            self.poly_sigma,
            0,
        )


class RaftFlow:
    """RAFT (torchvision `raft_large`) from a local weights file, as in the reference (20 iterations).

    Frames are padded to a multiple of 8 with replicate padding split evenly (RAFT's `InputPadder`), and
    the flow of the padded frame is returned, exactly what the reference scores.
    """

    name = "raft"

    def __init__(self, weights: str, device: str = "cpu", iters: int = 20) -> None:
        try:
            from torchvision.models.optical_flow import raft_large
        except ImportError as err:  # torchvision cannot be installed beside every torch build
            raise RuntimeError(
                "RAFT flow needs torchvision; use the farneback backend where it is missing"
            ) from err
        import torch

        from components.storage import materialize

        self.model = raft_large(weights=None, progress=False)
        self.model.load_state_dict(
            torch.load(materialize(weights, what="evaluator weights path"), map_location="cpu")
        )
        self.model.to(device).eval()
        self.device, self.iters = device, iters

    def __call__(self, frame1: np.ndarray, frame2: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        def prep(frame: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(np.ascontiguousarray(frame[:, :, :3])).permute(2, 0, 1)[None].float()
            return (2 * (x / 255.0) - 1.0).to(self.device)

        x1, x2 = prep(frame1), prep(frame2)
        h, w = x1.shape[-2:]
        ph, pw = (((h // 8) + 1) * 8 - h) % 8, (((w // 8) + 1) * 8 - w) % 8
        pad = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]
        x1, x2 = F.pad(x1, pad, mode="replicate"), F.pad(x2, pad, mode="replicate")
        with torch.no_grad():
            flow = self.model(x1, x2, num_flow_updates=self.iters)[-1]
        return flow[0].permute(1, 2, 0).cpu().numpy()


def make_flow(spec: str, device: str = "cpu") -> FlowBackend:
    """`farneback` or `raft:<weights path or s3 URI>`."""
    if spec == "farneback":
        return FarnebackFlow()
    if spec.startswith("raft:"):
        return RaftFlow(spec[len("raft:") :], device=device)
    raise ValueError(f"flow={spec!r} is not a flow backend; expected 'farneback' or 'raft:<weights>'")


def top_flow_score(flow: np.ndarray) -> float:
    """Mean of the largest 5% flow magnitudes (at least one pixel, so tiny frames still score)."""
    radius = np.sqrt(np.square(flow[..., 0]) + np.square(flow[..., 1])).ravel()
    cut = max(1, int(radius.size * 0.05))
    return float(np.sort(radius)[::-1][:cut].mean())


@dataclass
class DynamicResult:
    dynamic: bool
    pair_scores: list[float]
    threshold: float
    count_needed: int
    interval: int


def dynamic_degree(frames: np.ndarray, fps: float, flow: FlowBackend) -> DynamicResult:
    """Dync-D of one video (the benchmark score is the fraction of videos returning `dynamic=True`).

    Frames are subsampled every round(fps / 8) frames; a pair moves when its top-5% flow magnitude
    exceeds 6 * short_side / 256; the video is dynamic once round(n_frames / 4) pairs moved. The check
    keeps the reference's loop order, so with round(n / 4) == 0 any single pair makes it dynamic.
    """
    if frames.ndim != 4 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got dtype={frames.dtype} shape={frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps={fps} must be positive")
    interval = max(1, round(fps / 8))
    sampled = frames[::interval]
    threshold = 6.0 * (min(sampled.shape[1:3]) / 256.0)
    count_needed = round(len(sampled) / 4.0)
    scores = [top_flow_score(flow(a, b)) for a, b in zip(sampled[:-1], sampled[1:], strict=True)]
    moved, dynamic = 0, False
    for score in scores:
        if score > threshold:
            moved += 1
        if moved >= count_needed:
            dynamic = True
            break
    return DynamicResult(dynamic, scores, threshold, count_needed, interval)
