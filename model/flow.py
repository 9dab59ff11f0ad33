"""Rectified flow as pure functions. Time t runs from 0 (data) to 1 (noise): x_t = (1 - t) x_0 + t eps,
and the network predicts the velocity v = eps - x_0, constant along each straight path."""

from __future__ import annotations

import torch

from model.config import FlowConfig


def sample_timesteps(
    batch_size: int, config: FlowConfig, device: torch.device, generator: torch.Generator | None = None
) -> torch.Tensor:
    if config.timestep_sampling == "uniform":
        return torch.rand(batch_size, generator=generator, device=device)
    if config.timestep_sampling == "logit_normal":  # concentrates training on mid-range noise levels
        normal = torch.randn(batch_size, generator=generator, device=device)
        return torch.sigmoid(config.logit_mean + config.logit_std * normal)
    raise ValueError(f"timestep_sampling={config.timestep_sampling!r}; expected 'logit_normal' or 'uniform'")


def broadcast(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    t = broadcast(t, x0)
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def predicted_x0(x_t: torch.Tensor, velocity: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return x_t - broadcast(t, x_t) * velocity


def flow_loss(predicted_velocity: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.mse_loss(predicted_velocity.float(), target.float())


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """shift > 1 moves every time towards noise, so a sampler spends more of its budget at high noise."""
    return shift * t / (1 + (shift - 1) * t)


def time_grid(
    steps: int, shift: float = 1.0, kind: str = "uniform", device: torch.device | None = None
) -> torch.Tensor:
    """steps + 1 times from 1 to 0.

    `uniform` shifts evenly spaced times. `flow_match` is the grid of diffusers' FlowMatchEulerDiscreteScheduler
    (1000 training steps, no dynamic shifting), which Wan's pipelines sample on: `steps` times evenly spaced
    from 1 down to the smallest shifted training time, shifted (again), then 0."""
    if steps < 1:
        raise ValueError(f"steps={steps} must be >= 1")
    if kind == "uniform":
        return shift_time(torch.linspace(1.0, 0.0, steps + 1, device=device), shift)
    if kind != "flow_match":
        raise ValueError(f"time grid kind={kind!r}; expected 'uniform' or 'flow_match'")
    smallest = shift_time(torch.tensor(1e-3, dtype=torch.float64), shift)
    times = shift_time(torch.linspace(1.0, float(smallest), steps, dtype=torch.float64), shift)
    return torch.cat([times.float(), torch.zeros(1)]).to(device)


def euler_step(x: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    return x + (t_next - t) * velocity


def guided_velocity(
    full: torch.Tensor,
    text_only: torch.Tensor | None,
    unconditional: torch.Tensor | None,
    guidance: float,
    reference_guidance: float | None,
) -> torch.Tensor:
    """Classifier-free guidance; with `reference_guidance`, text and references are guided separately:
    v = v_null + g_text (v_text - v_null) + g_ref (v_full - v_text)."""
    if unconditional is None:
        return full
    if reference_guidance is None or text_only is None:
        return unconditional + guidance * (full - unconditional)
    return unconditional + guidance * (text_only - unconditional) + reference_guidance * (full - text_only)
