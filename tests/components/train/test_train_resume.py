"""Training end to end on the tiny preset with a real DeepSpeed engine (gloo, CPU) and a real MLflow store.

One uninterrupted run is the reference. A second run is started as a subprocess through `alchemist train`,
killed with SIGKILL after its first checkpoint, resumed in-process, stopped with SIGTERM (which must leave a
checkpoint at the step it stopped), and resumed again to the end: its losses, weights and EMA must equal the
reference run's, because every random draw is a function of (seed, step) and the checkpoints carry the
optimizer, scheduler, EMA and data position.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from components.train.checkpoint import CheckpointManager
from components.train.config import DataConfig, OptimConfig, TrainConfig
from components.train.schedule import warmup_cosine
from components.train.trainer import ResumeError, load_trained, train

STEPS = 12
REPO = Path(__file__).resolve().parents[3]


def config(dataset: Path, out: Path, uri: str, **overrides: object) -> TrainConfig:
    """The same options the CLI command in `cli_args` spells out."""
    base = dict(
        out=out,
        preset="tiny",
        stage="1",
        steps=STEPS,
        checkpoint_every=2,
        keep_last=2,
        sample_every=-1,
        tracking_uri=uri,
        data_rev="rev-abc123",
        progress=False,
        data=DataConfig(manifest=dataset, batch_size=2),
        optim=OptimConfig(lr=1e-3, warmup_steps=3, min_lr_ratio=0.1, grad_accum=2),
    )
    base.update(overrides)
    return TrainConfig(**base)


def cli_args(dataset: Path, out: Path, uri: str) -> list[str]:
    return [
        sys.executable, "-c", "from pipelines.cli import app; app()", "train",
        "--dataset", str(dataset), "--out", str(out), "--stage", "1", "--preset", "tiny",
        "--train-steps", str(STEPS), "--checkpoint-every", "2", "--keep-last", "2", "--batch-size", "2",
        "--grad-accum", "2", "--lr", "1e-3", "--warmup-steps", "3", "--min-lr-ratio", "0.1",
        "--sample-every", "-1", "--tracking-uri", uri, "--data-rev", "rev-abc123",
    ]  # fmt: skip


def wait_for_checkpoint(
    manager: CheckpointManager, after: int, proc: subprocess.Popen | None, timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = [s for s in manager.steps() if s > after]
        if steps:
            return steps[0]
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"training exited early with code {proc.returncode}: {proc.stderr.read()[-3000:]}"
            )
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint after step {after} within {timeout} s")


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for the module: creating a SQLite store's tables takes seconds."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def reference(
    mined_dataset: Path, tmp_path_factory: pytest.TempPathFactory, tracking_uri: str
) -> tuple[TrainConfig, object]:
    out = tmp_path_factory.mktemp("reference")
    cfg = config(mined_dataset, out, tracking_uri, sample_every=0, num_sample_prompts=1, sample_steps=2)
    return cfg, train(cfg)


def test_uninterrupted_run_learns_and_logs_to_mlflow(reference: tuple[TrainConfig, object]) -> None:
    import mlflow

    cfg, result = reference
    (stage,) = result.stages
    assert stage.steps == STEPS and len(stage.losses) == STEPS and not result.interrupted
    assert sum(stage.losses[-4:]) < sum(stage.losses[:4])  # the tiny model fits the coloured squares
    assert stage.skipped_samples > 0  # the corrupt clip and the missing crop were skipped, not fatal
    assert CheckpointManager(cfg.out / "stage1" / "checkpoints", 2).steps() == [STEPS - 2, STEPS]

    client = mlflow.MlflowClient(cfg.tracking_uri)
    run = client.get_run(stage.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.optim.lr"] == "0.001" and run.data.params["model.dit.hidden_size"] == "64"
    assert run.data.tags["data.rev"] == "rev-abc123" and run.data.tags["git.commit"]
    random_encoders = load_trained(result.final_dir).random_weight_encoders()
    assert run.data.tags["encoders.random_weights"] == ",".join(random_encoders)
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "train/loss")]
    assert losses == pytest.approx(stage.losses)
    lrs = [m.value for m in client.get_metric_history(run.info.run_id, "train/lr")]
    assert lrs == pytest.approx([1e-3 * warmup_cosine(s, 3, STEPS, 0.1) for s in range(STEPS)])
    assert lrs[:3] == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3])
    assert client.get_metric_history(run.info.run_id, "train/tokens_per_s")[-1].value > 0
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoint")}
    assert {"checkpoint/model.safetensors", "checkpoint/ema.pt", "checkpoint/config.json"} <= artifacts
    samples = {
        Path(a.path).suffix for a in client.list_artifacts(run.info.run_id, f"samples/step-{STEPS:08d}")
    }
    assert {".mp4", ".gif"} <= samples


def test_killed_run_resumes_to_the_same_result(
    mined_dataset: Path, tmp_path: Path, reference: tuple[TrainConfig, object], tracking_uri: str
) -> None:
    _, ref = reference
    out, uri = tmp_path / "run", tracking_uri
    manager = CheckpointManager(out / "stage1" / "checkpoints", 2)

    # 1. SIGKILL right after the first checkpoint: only the steps since then are lost.
    # A fresh process group of one: drop what this process's own in-process group put in the environment.
    group = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}
    env = {**{k: v for k, v in os.environ.items() if k not in group}, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        cli_args(mined_dataset, out, uri), cwd=REPO, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        first = wait_for_checkpoint(manager, 0, proc, timeout=240)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    killed_at = manager.steps()[-1]
    assert 2 <= killed_at < STEPS and first == 2
    killed_state = json.loads((manager.latest() / "trainer_state.json").read_text())
    assert len(killed_state["losses"]) == killed_at
    assert killed_state["losses"] == pytest.approx(ref.stages[0].losses[:killed_at], rel=1e-5)

    with pytest.raises(ResumeError, match="pass --resume"):
        train(config(mined_dataset, out, uri))

    # 2. Resume in-process; SIGTERM after its next checkpoint must checkpoint the step it stopped at.
    def terminate_after_next_checkpoint() -> None:
        wait_for_checkpoint(manager, killed_at, None, timeout=240)
        os.kill(os.getpid(), signal.SIGTERM)

    watcher = threading.Thread(target=terminate_after_next_checkpoint, daemon=True)
    watcher.start()
    stopped = train(config(mined_dataset, out, uri, resume=True))
    watcher.join(timeout=5)
    (stage,) = stopped.stages
    assert stopped.interrupted and stage.final_dir is None
    assert killed_at < stage.steps < STEPS and manager.steps()[-1] == stage.steps
    assert stage.mlflow_run_id == killed_state["mlflow_run_id"]  # the same MLflow run continues

    # 3. Resume to the end: identical to never having been interrupted.
    resumed = train(config(mined_dataset, out, uri, resume=True))
    (final,) = resumed.stages
    assert final.steps == STEPS and final.losses == pytest.approx(ref.stages[0].losses, rel=1e-5, abs=1e-6)
    weights, ref_weights = (
        load_file(str(d / "model.safetensors")) for d in (resumed.final_dir, ref.final_dir)
    )
    assert weights.keys() == ref_weights.keys()
    for name, value in weights.items():
        torch.testing.assert_close(value, ref_weights[name], rtol=1e-5, atol=1e-6, msg=name)
    ema, ref_ema = (torch.load(d / "ema.pt", weights_only=True) for d in (resumed.final_dir, ref.final_dir))
    assert ema["updates"] == ref_ema["updates"] == STEPS
    for name, value in ema["shadow"].items():
        torch.testing.assert_close(value, ref_ema["shadow"][name], rtol=1e-5, atol=1e-6, msg=name)

    import mlflow

    history = mlflow.MlflowClient(uri).get_metric_history(final.mlflow_run_id, "train/loss")
    assert sorted({m.step for m in history}) == list(range(1, STEPS + 1))
