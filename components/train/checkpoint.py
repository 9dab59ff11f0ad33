"""Atomic, rotating training checkpoints.

The hard cases first:
- A process killed mid-write (SIGKILL, node loss) must never leave a directory that looks complete. Every
  checkpoint is written into a hidden temporary directory and renamed to `step-XXXXXXXX` only after all
  ranks finished writing and `trainer_state.json` (written last) is in place; `latest()` ignores the rest.
- Several ranks write their own ZeRO shards into the same temporary directory (a shared filesystem on a
  cluster); rank 0 renames after a barrier.
- Resuming needs more than weights: optimizer and scheduler (inside the DeepSpeed checkpoint), the EMA, the
  step, the data position and the MLflow run id (in `trainer_state.json` / `ema.pt`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from components.train.ema import EMA

STEP_DIR = re.compile(r"^step-(\d{8})$")
STATE_FILE = "trainer_state.json"
EMA_FILE = "ema.pt"
ENGINE_TAG = "engine"


@dataclass
class TrainerState:
    """Where the run is: the next optimizer step to take, and where the sampler stands."""

    stage: int
    step: int
    epoch: int
    offset: int  # sampler indices of `epoch` already consumed by this rank
    samples_seen: int
    skipped_samples: int
    mlflow_run_id: str | None
    losses: list[float]  # per-step loss history, so a resumed run reports the whole curve


class CheckpointManager:
    def __init__(self, root: Path, keep_last: int, rank: int = 0) -> None:
        self.root = Path(root)
        self.keep_last = keep_last
        self.rank = rank

    def steps(self) -> list[int]:
        """Steps of complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for child in self.root.iterdir():
            match = STEP_DIR.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append(int(match.group(1)))
        return sorted(found)

    def path(self, step: int) -> Path:
        return self.root / f"step-{step:08d}"

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.path(steps[-1]) if steps else None

    def save(self, engine: Any, ema: EMA, state: TrainerState) -> Path:
        import torch.distributed as dist

        final = self.path(state.step)
        tmp = self.root / f".tmp-step-{state.step:08d}"
        if self.rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a run killed while saving
            tmp.mkdir(parents=True)
        dist.barrier()
        engine.save_checkpoint(str(tmp), tag=ENGINE_TAG, save_latest=False)
        dist.barrier()
        if self.rank == 0:
            torch.save(ema.state_dict(), tmp / EMA_FILE)
            write_json(tmp / STATE_FILE, asdict(state))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            fsync_dir(self.root)
            for old in self.steps()[: -self.keep_last]:
                shutil.rmtree(self.path(old), ignore_errors=True)
        dist.barrier()
        return final

    def load(self, path: Path, engine: Any, ema: EMA) -> TrainerState:
        load_path, _ = engine.load_checkpoint(str(path), tag=ENGINE_TAG)
        if load_path is None:
            raise RuntimeError(f"DeepSpeed could not load the engine state from {path / ENGINE_TAG}")
        ema.load_state_dict(torch.load(path / EMA_FILE, map_location="cpu", weights_only=True))
        return TrainerState(**json.loads((path / STATE_FILE).read_text()))


def write_json(path: Path, data: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
