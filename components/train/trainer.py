"""`train(config) -> TrainResult`: the two-stage training loop around a DeepSpeed engine.

One flat loop per stage (nanoGPT style): draw micro-batches, `engine.backward` / `engine.step` (DeepSpeed
handles accumulation, clipping and the LR scheduler at the boundary), update the EMA, log, checkpoint. Every
random draw is a pure function of (seed, stage, step, micro-step, rank) or (seed, epoch, index), which is what
makes a resumed run continue exactly where the interrupted one stood.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from tqdm import tqdm

from components.train.checkpoint import CheckpointManager, TrainerState, write_json
from components.train.config import TrainConfig, flatten
from components.train.dataset import Batch, ManifestDataset, build_loader
from components.train.ema import EMA, gathered
from components.train.engine import build_engine, device_for_rank, init_distributed
from components.train.lora import has_lora, merge_lora
from components.train.preflight import RESULT_FILE, ResumeError, preflight, sample_size
from components.train.sampler import ResumableSampler
from components.train.samples import fixed_prompts, generate_samples
from components.train.tracking import Tracker, git_commit, run_name, tracking_uri

log = logging.getLogger(__name__)

EMA_FILE = "ema.pt"


@dataclass
class StageResult:
    stage: int
    final_dir: Path | None  # None when the stage was interrupted before finishing
    steps: int
    losses: list[float]
    skipped_samples: int
    mlflow_run_id: str | None
    interrupted: bool = False


@dataclass
class TrainResult:
    final_dir: Path | None  # the last finished stage's model (VideoAlchemist.save_pretrained + ema.pt)
    stages: list[StageResult] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return any(s.interrupted for s in self.stages)


def train(config: TrainConfig) -> TrainResult:
    """Run stage 1, stage 2, or both (stage 2 then starts from stage 1's final weights)."""
    preflight(config)
    rank, world_size = init_distributed()
    device = device_for_rank()
    result = TrainResult(final_dir=None)
    init_from = config.init_from
    for stage in config.stages():
        if stage == 2 and init_from is None and config.stage == "both":
            init_from = result.final_dir
        stage_result = StageRunner(config, stage, rank, world_size, device, init_from).run()
        result.stages.append(stage_result)
        if stage_result.interrupted:
            break
        result.final_dir = stage_result.final_dir
        result.metrics[f"stage{stage}/final_loss"] = (
            stage_result.losses[-1] if stage_result.losses else math.nan
        )
        result.metrics[f"stage{stage}/skipped_samples"] = float(stage_result.skipped_samples)
    return result


def load_trained(directory: Path, use_ema: bool = True, map_location: str = "cpu") -> torch.nn.Module:
    """A finished stage's model; with `use_ema` its trainable weights are replaced by their EMA."""
    from components.weights import load_model

    model = load_model(directory, map_location)
    if use_ema:
        state = torch.load(Path(directory) / EMA_FILE, map_location="cpu", weights_only=True)
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in state["shadow"].items():
                params[name].copy_(value.to(params[name].dtype))
    return model


def build_model(config: TrainConfig, stage: int, init_from: str | Path | None) -> torch.nn.Module:
    """The stage's model through the one builder (preset or checkpoint, overrides, located weights)."""
    from components.configuration import preset_config
    from components.weights import build_model as build
    from components.weights import load_model

    load_encoders = config.data.features is None  # the encode-once cache replaces them
    if init_from is not None:
        model = load_model(init_from, overrides=config.model_overrides, load_encoders=load_encoders)
        if stage == 2 and model.config.dit.word_binding != config.binding:
            # Stage 1 never uses the binder, so one stage-1 result serves both arms of the binding ablation.
            torch.manual_seed(config.seed)
            model.rebuild_binder(word_binding=config.binding)
    else:
        if stage == 2:
            log.warning("stage 2 starts from random weights: no stage-1 result or --init-from was given")
        overrides = {**config.model_overrides}
        overrides["dit"] = {**overrides.get("dit", {}), "word_binding": config.binding}
        model_config = preset_config(config.preset, overrides)
        torch.manual_seed(config.seed)  # the same seed always gives the same initial weights
        model = build(model_config, load_encoders)
    model.config.dit.gradient_checkpointing = config.activation_checkpointing
    model.set_stage(stage)
    choose_trainable(model, config, stage)
    return model.train()


def choose_trainable(model: Any, config: TrainConfig, stage: int) -> None:
    """Stage 2 with `personalization` trains only the personalization attention, its norms and the binder;
    LoRA adds rank-r adapters on the frozen backbone. Optimizer states then cover only those."""
    from components.train.lora import add_lora

    if stage == 2 and config.trainable == "personalization":
        for parameter in [*model.dit.parameters(), *model.binder.parameters()]:
            parameter.requires_grad_(False)
    if config.lora_rank:
        torch.manual_seed(config.seed)
        add_lora(model.dit, config.lora_rank)
    if stage == 2:
        for parameter in model.personalization_parameters():
            parameter.requires_grad_(True)


def step_seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class StopRequest:
    """SIGTERM (preemption, `kill`, Kubernetes eviction) asks the loop to checkpoint and leave cleanly."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> StopRequest:
        try:
            self.previous = signal.signal(signal.SIGTERM, self.handle)
        except ValueError:  # not the main thread: signals cannot be caught here
            self.previous = None
        return self

    def handle(self, signum: int, frame: Any) -> None:
        log.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class StageRunner:
    def __init__(
        self,
        config: TrainConfig,
        stage: int,
        rank: int,
        world_size: int,
        device: torch.device,
        init_from: Path | None,
    ) -> None:
        self.cfg, self.stage, self.device = config, stage, device
        self.rank, self.world_size = rank, world_size
        self.init_from = init_from
        self.dir = Path(config.out) / f"stage{stage}"
        self.final_dir = self.dir / "final"
        self.total_steps = config.stage_steps(stage)

    # ------------------------------------------------------------------ setup
    def run(self) -> StageResult:
        if (self.final_dir / RESULT_FILE).is_file():
            if not self.cfg.resume:
                raise ResumeError(
                    f"{self.final_dir} already holds a finished stage {self.stage}; pass --resume or a new --out"
                )
            log.info("stage %d already finished in %s; skipping", self.stage, self.final_dir)
            saved = json.loads((self.final_dir / RESULT_FILE).read_text())
            return StageResult(**{**saved, "final_dir": self.final_dir})
        checkpoints = CheckpointManager(self.dir / "checkpoints", self.cfg.keep_last, self.rank)
        latest = checkpoints.latest()
        if latest is not None and not self.cfg.resume:
            raise ResumeError(f"{latest} exists: pass --resume to continue it, or choose another --out")

        model = build_model(self.cfg, self.stage, self.init_from).to(self.device)
        dataset = self.build_dataset(model)
        sampler = ResumableSampler(
            len(dataset), self.cfg.seed, self.cfg.data.shuffle, self.rank, self.world_size
        )
        loader = build_loader(dataset, self.cfg.data, sampler, pin_memory=self.device.type == "cuda")
        engine, scheduler = build_engine(model, self.cfg, self.total_steps)
        self.zero_stage = engine.zero_optimization_stage()
        ema = EMA(model, self.cfg.optim.ema_decay)
        state = TrainerState(self.stage, 0, 0, 0, 0, 0, None, [])
        if latest is not None:
            state = checkpoints.load(latest, engine, ema)
            log.info("resumed stage %d from %s at step %d", self.stage, latest, state.step)

        tracker = Tracker(enabled=self.rank == 0)
        name = run_name(
            self.cfg.run_name or Path(self.cfg.out).name, self.stage, self.cfg.preset, self.cfg.data_rev
        )
        state.mlflow_run_id = tracker.start(
            tracking_uri(self.cfg.tracking_uri), self.cfg.experiment, name, state.mlflow_run_id
        )
        self.log_run_info(tracker, model, engine)
        tracker.log_data_input(self.cfg.data.manifest, self.cfg.data_rev)
        # Samples need the encoders: a run on the encode-once cache trains without them and samples nothing.
        samples_possible = self.rank == 0 and isinstance(dataset, ManifestDataset)
        self.prompts = fixed_prompts(dataset, self.cfg.num_sample_prompts) if samples_possible else []
        sampler.set_position(state.epoch, state.offset)
        status = "FAILED"
        try:
            with StopRequest() as stop:
                interrupted = self.loop(
                    engine, scheduler, model, ema, loader, sampler, state, checkpoints, tracker, stop
                )
                if interrupted:
                    status = "KILLED"
                    return self.result(state, None, interrupted=True)
                if self.prompts and self.cfg.sample_every >= 0:
                    self.samples(model, ema, tracker, state.step)
                final = self.save_final(model, ema, state)
                if self.cfg.log_checkpoint_artifact:
                    tracker.log_artifacts(final, "checkpoint")
                status = "FINISHED"
                return self.result(state, final)
        finally:
            tracker.end(status)

    def build_dataset(self, model: Any) -> Any:
        data, size = self.cfg.data, sample_size(self.cfg.data, model.config)
        model.config.check_video_size(size.frames, size.height, size.width)
        if data.features is not None:
            from components.train.features import FeatureDataset

            return FeatureDataset(data.features, model, data.manifest, size)
        return ManifestDataset(
            data.manifest, size, data.split, data.augment, data.p_background, data.cache_dir, self.cfg.seed
        )

    def log_run_info(self, tracker: Tracker, model: Any, engine: Any) -> None:
        params = flatten({"train": self.cfg.to_dict(), "model": model.config.to_dict()})
        params.update(
            {
                "stage": self.stage,
                "world_size": self.world_size,
                "zero_stage": engine.zero_optimization_stage(),
                "bf16": engine.bfloat16_enabled(),
                "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
                "total_parameters": sum(p.numel() for p in model.parameters()),
                "init_from": str(self.init_from) if self.init_from else None,
            }
        )
        tracker.log_params(params)
        tracker.set_tags(
            {
                "stage": self.stage,
                "data.rev": self.cfg.data_rev or "unknown",
                "git.commit": git_commit() or "unknown",
                "encoders.random_weights": ",".join(model.random_weight_encoders()) or "none",
                "device": str(self.device),
            }
        )

    # ------------------------------------------------------------------ the loop
    def loop(
        self,
        engine: Any,
        scheduler: Any,
        model: Any,
        ema: EMA,
        loader: Any,
        sampler: ResumableSampler,
        state: TrainerState,
        checkpoints: CheckpointManager,
        tracker: Tracker,
        stop: StopRequest,
    ) -> bool:
        """Returns True when stopped by SIGTERM (after checkpointing)."""
        cfg = self.cfg
        batches = self.batches(loader, sampler, state)
        bar = tqdm(
            total=self.total_steps,
            initial=state.step,
            desc=f"stage {self.stage}",
            unit="step",
            disable=not cfg.progress or self.rank != 0,
            dynamic_ncols=True,
        )
        process = psutil.Process()
        try:
            while state.step < self.total_steps:
                started = time.perf_counter()
                lr = scheduler.get_last_lr()[0]  # the rate this step uses (engine.step advances it)
                losses, samples, tokens = [], 0, 0
                for micro in range(cfg.optim.grad_accum):
                    batch = next(batches)
                    generator = torch.Generator().manual_seed(
                        step_seed(cfg.seed, self.stage, state.step, micro, self.rank)
                    )
                    loss = engine(batch.training, generator)
                    engine.backward(loss)
                    engine.step()
                    losses.append(float(loss.detach()))
                    samples += len(batch.sample_ids)
                    tokens += len(batch.sample_ids) * batch.training.video_tokens(model.config)
                ema.update(model)
                loss_value = self.mean_over_ranks(sum(losses) / len(losses))
                state.step += 1
                state.samples_seen += samples * self.world_size
                state.losses.append(loss_value)
                elapsed = max(time.perf_counter() - started, 1e-9)
                if state.step % cfg.log_every == 0 or state.step == self.total_steps:
                    metrics = {
                        "train/loss": loss_value,
                        "train/lr": lr,
                        "train/samples_per_s": samples * self.world_size / elapsed,
                        "train/tokens_per_s": tokens * self.world_size / elapsed,
                        "train/step_time_s": elapsed,
                        "train/skipped_samples": float(state.skipped_samples),
                        "train/ema_decay": ema.current_decay(),
                        "memory/cpu_rss_gb": process.memory_info().rss / 2**30,
                    }
                    if torch.cuda.is_available():
                        metrics["memory/gpu_max_allocated_gb"] = torch.cuda.max_memory_allocated() / 2**30
                    tracker.log_metrics(metrics, state.step)
                bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}", refresh=False)
                bar.update(1)
                if state.step % cfg.checkpoint_every == 0 or stop.requested:
                    checkpoints.save(engine, ema, state)
                if stop.requested:
                    return True
                if (
                    cfg.sample_every > 0
                    and state.step % cfg.sample_every == 0
                    and state.step < self.total_steps
                ):
                    if self.prompts:
                        self.samples(model, ema, tracker, state.step)
        finally:
            bar.close()
        return False

    def batches(self, loader: Any, sampler: ResumableSampler, state: TrainerState) -> Any:
        """Endless micro-batches; advances epochs, counts skipped samples and moves data to the device."""
        while True:
            whole_epoch, yielded = state.offset == 0, False
            for batch in loader:
                batch: Batch
                state.offset += batch.num_indices
                state.skipped_samples += len(batch.skipped)
                if batch.training is None:
                    continue
                yielded = True
                yield batch.to(self.device)
            if whole_epoch and not yielded:
                raise RuntimeError(
                    f"every sample of epoch {state.epoch} in {self.cfg.data.manifest} was unreadable"
                )
            state.epoch, state.offset = state.epoch + 1, 0
            sampler.set_position(state.epoch, 0)

    def mean_over_ranks(self, value: float) -> float:
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], device=self.device)
        dist.all_reduce(tensor)
        return float(tensor) / self.world_size

    # ------------------------------------------------------------------ outputs
    def samples(self, model: Any, ema: EMA, tracker: Tracker, step: int) -> None:
        if self.zero_stage == 3:  # partitioned weights: sampling would need every rank; skipped
            return
        out = self.dir / "samples" / f"step-{step:08d}"
        generate_samples(model, ema, self.prompts, out, self.cfg.sample_steps, self.cfg.seed)
        model.train()
        tracker.log_samples(out, step, self.prompts)

    def save_final(self, model: Any, ema: EMA, state: TrainerState) -> Path:
        """save_pretrained + EMA + result.json, renamed into place only when complete."""
        tmp = self.dir / ".tmp-final"
        with gathered(model):
            if has_lora(model):  # every rank: the adapters fold into plain weights before saving
                ema.shadow = merge_lora(model, ema.shadow)
            if self.rank == 0:
                shutil.rmtree(tmp, ignore_errors=True)
                model.save_pretrained(tmp)
                torch.save(ema.state_dict(), tmp / EMA_FILE)
                result = dataclasses.asdict(self.result(state, None))
                write_json(tmp / RESULT_FILE, {k: v for k, v in result.items() if k != "final_dir"})
                shutil.rmtree(self.final_dir, ignore_errors=True)
                os.replace(tmp, self.final_dir)
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()
        return self.final_dir

    def result(self, state: TrainerState, final: Path | None, interrupted: bool = False) -> StageResult:
        return StageResult(
            stage=self.stage,
            final_dir=final,
            steps=state.step,
            losses=list(state.losses),
            skipped_samples=state.skipped_samples,
            mlflow_run_id=state.mlflow_run_id,
            interrupted=interrupted,
        )
