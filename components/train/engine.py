"""DeepSpeed: process group, config resolution and the engine around the model's training loss.

One process on a CPU joins a one-member gloo group in-process; under `deepspeed` or `torchrun` the launcher's
RANK/WORLD_SIZE/MASTER_* variables are used as they are (NCCL on GPUs).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import torch

from components.train.config import TrainConfig
from components.train.schedule import build_scheduler


class DeepSpeedConfigError(ValueError):
    """The DeepSpeed JSON contradicts the training options."""


def init_distributed() -> tuple[int, int]:
    """Join (or create) the process group; returns (rank, world_size)."""
    import deepspeed
    import torch.distributed as dist

    from components.train.op_cache import prepare_op_cache

    if not dist.is_initialized():
        prepare_op_cache()  # DeepSpeed builds its CPU op on the first init
        # Not under a launcher, or a group of one: a fresh port every time. A group of one needs no agreed
        # port, and a subprocess (a kfp.local step) inherits its parent's MASTER_PORT while the parent's
        # store may still hold it.
        if "RANK" not in os.environ or os.environ.get("WORLD_SIZE") == "1":
            os.environ.update(
                RANK="0",
                LOCAL_RANK="0",
                WORLD_SIZE="1",
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(free_port()),
            )
        deepspeed.init_distributed(dist_backend="nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def device_for_rank() -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def resolve_ds_config(path: Path, cfg: TrainConfig) -> dict[str, Any]:
    """Read the JSON and fill the fields the trainer owns; `"auto"` takes the training option.

    The JSON owns the ZeRO settings; batch size, accumulation, clipping and precision come from
    `TrainConfig` so that the data loader and the engine can never disagree. An explicit JSON value that
    differs from the option is an error rather than a silent override."""
    ds = json.loads(Path(path).read_text())
    owned: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": cfg.data.batch_size,
        "gradient_accumulation_steps": cfg.optim.grad_accum,
        "gradient_clipping": cfg.optim.grad_clip,
    }
    for key, value in owned.items():
        given = ds.get(key, "auto")
        if given not in ("auto", value):
            raise DeepSpeedConfigError(
                f'{path}: {key}={given} contradicts the training option {value}; use "auto"'
            )
        ds[key] = value
    bf16 = ds.setdefault("bf16", {"enabled": "auto"})
    if bf16.get("enabled", "auto") == "auto":
        bf16["enabled"] = torch.cuda.is_available()
    if bf16["enabled"] and not torch.cuda.is_available():
        raise DeepSpeedConfigError(
            f"{path}: bf16 is enabled but no GPU is present; CPU training runs in fp32"
        )
    ds.pop("train_batch_size", None)  # derived by DeepSpeed from micro batch x accumulation x world size
    return ds


class LossModule(torch.nn.Module):
    """Makes `engine(batch)` return the model's training loss, so DeepSpeed's forward hooks see the call."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Any, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.model.training_loss(batch, generator=generator)


def build_engine(model: torch.nn.Module, cfg: TrainConfig, total_steps: int) -> tuple[Any, Any]:
    """(engine, lr_scheduler): AdamW over the trainable weights, warmup + cosine, ZeRO from the JSON;
    with `cfg.compile` the DiT runs under torch.compile."""
    import deepspeed

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise RuntimeError("the model has no trainable parameters for this stage")
    # Norm gains and biases are not decayed (standard for transformers).
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
    )
    scheduler = build_scheduler(optimizer, cfg.optim.warmup_steps, total_steps, cfg.optim.min_lr_ratio)
    if cfg.compile:  # in place, so parameter names (and the checkpoints that carry them) stay as they are
        model.dit.compile()
    engine, _, _, lr_scheduler = deepspeed.initialize(
        model=LossModule(model),
        optimizer=optimizer,
        lr_scheduler=scheduler,
        config=resolve_ds_config(cfg.deepspeed_config, cfg),
    )
    return engine, lr_scheduler
