"""Exponential moving average of the trainable weights, kept outside the DeepSpeed engine.

It holds fp32 copies on the weights' device (no host transfer per step; independent of bf16, and under
ZeRO-3 of partitioning, since it reads gathered weights) and is saved with every checkpoint. The decay ramps up as `(1 + n) / (10 + n)` so that a short
run's average is not dominated by the random initialisation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class EMA:
    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        with gathered(model):
            self.shadow = {
                name: p.detach().float().clone() for name, p in model.named_parameters() if p.requires_grad
            }

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = self.current_decay()
        with gathered(model):
            for name, p in model.named_parameters():
                if name in self.shadow:
                    self.shadow[name].lerp_(p.detach().float(), 1.0 - decay)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Overwrite the model's trainable weights with the averages (for sampling or export)."""
        params = dict(model.named_parameters())
        for name, value in self.shadow.items():
            params[name].copy_(value.to(params[name].dtype))

    def state_dict(self) -> dict[str, object]:
        return {
            "decay": self.decay,
            "updates": self.updates,
            "shadow": {k: v.cpu() for k, v in self.shadow.items()},
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        shadow = state["shadow"]
        assert isinstance(shadow, dict)
        missing = sorted(set(self.shadow) - set(shadow))
        if missing:
            raise ValueError(f"EMA state lacks {len(missing)} trainable weights, e.g. {missing[:3]}")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])  # type: ignore[arg-type]
        self.shadow = {k: shadow[k].to(self.shadow[k].device, torch.float32) for k in self.shadow}


@contextlib.contextmanager
def gathered(model: torch.nn.Module) -> Iterator[None]:
    """Under ZeRO-3 parameters are partitioned: gather them (read-only) for the duration."""
    params = [p for p in model.parameters() if hasattr(p, "ds_id")]
    if not params:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
        yield
