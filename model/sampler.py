"""The ODE sampler: a loop over the flow's pure functions, kept apart from the network."""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch

from model.flow import euler_step, time_grid

# velocity_fn(x_t, t, self_condition) -> (velocity, x0 estimate)
VelocityFn = Callable[[torch.Tensor, float, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


@torch.no_grad()
def sample(
    velocity_fn: VelocityFn,
    noise: torch.Tensor,
    steps: int,
    method: str = "euler",
    shift: float = 1.0,
    grid: str = "uniform",
    progress: Callable[[int, int], None] | None = None,
    start: float = 1.0,
) -> torch.Tensor:
    """Integrate from `noise` at t = start (1: pure noise; below 1: a partly noised clip) to data (t = 0).
    The previous x0 estimate is always fed back (self-conditioning at sampling time)."""
    if method not in ("euler", "heun"):
        raise ValueError(f"method={method!r}; expected 'euler' or 'heun'")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start={start} must be in (0, 1]")
    times = (time_grid(steps, shift, grid) * start).tolist()
    x, x0 = noise, None
    for i, (t, t_next) in enumerate(zip(times[:-1], times[1:])):
        velocity, x0 = velocity_fn(x, t, x0)
        if method == "heun" and t_next > 0:  # Heun's correction; the last step to t = 0 stays Euler
            x_euler = euler_step(x, velocity, t, t_next)
            velocity_next, _ = velocity_fn(x_euler, t_next, x0)
            velocity = 0.5 * (velocity + velocity_next)
        x = euler_step(x, velocity, t, t_next)
        if progress is not None:
            progress(i + 1, steps)
    return x


class StepCache:
    """Step skipping of the TeaCache family: a denoiser's block stack changes its input by a residual that
    drifts slowly between neighbouring steps, so while the timestep-modulated input has moved less than
    `threshold` (relative L1, accumulated since the last computed step), the last residual is reused.

    Off unless a sampler passes one (`Generator.generate(step_cache=...)`); it trades exactness for speed, and
    `benchmarks/sampling.py --cache-threshold` measures both. A new conditioning context (a new generation)
    or another input shape starts it afresh. It is consulted once per network evaluation, so with Heun (two
    per step) `computed`, `skipped` and `moves` count evaluations, and a step's first evaluation, close to
    the previous corrector's input, is usually skipped."""

    def __init__(self, threshold: float) -> None:
        if not 0 <= threshold < float("inf"):  # NaN too: it would skip every step after the first
            raise ValueError(f"step cache threshold={threshold} must be a finite number >= 0")
        self.threshold = threshold
        self.computed = self.skipped = 0
        self.context: weakref.ref | None = None
        self.probe: torch.Tensor | None = None
        self.residual: torch.Tensor | None = None
        self.drift = 0.0
        # Every evaluation's relative move of the probe since the previous one: what a threshold is chosen from.
        self.moves: list[float] = []

    def reusable(self, probe: torch.Tensor, context: object) -> torch.Tensor | None:
        """The cached residual if the stack may be skipped for this `probe`, else None (compute and `store`)."""
        fresh = (
            self.context is None
            or self.context() is not context
            or self.probe is None
            or self.probe.shape != probe.shape
        )
        if not fresh:
            self.moves.append(
                float((probe - self.probe).abs().mean() / self.probe.abs().mean().clamp_min(1e-12))
            )
            self.drift += self.moves[-1]
        self.context, self.probe = weakref.ref(context), probe
        if fresh or self.drift >= self.threshold:
            self.drift = 0.0
            self.computed += 1
            return None
        self.skipped += 1
        return self.residual

    def store(self, residual: torch.Tensor) -> None:
        self.residual = residual

    def release(self) -> None:
        """Drop the held input and residual (a whole batch of activations) once a generation is done; the
        counts and `moves` stay, and the next generation starts afresh."""
        self.context = self.probe = self.residual = None
