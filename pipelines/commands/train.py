"""`alchemist train`: two-stage DeepSpeed training on a mined dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from components.train.config import DEFAULT_DEEPSPEED_CONFIG


def train_command(
    manifest: Path = typer.Option(
        ..., "--manifest", help="Mined dataset folder (manifest.parquet + media/)."
    ),
    out: Path = typer.Option(
        Path("work/train"), "--out", help="Output folder: checkpoints, final models, samples."
    ),
    stage: str = typer.Option(
        "both", "--stage", help="1 (text only), 2 (personalization, full fine-tune) or both."
    ),
    preset: str = typer.Option("tiny", "--preset", help="Model size preset: tiny, small, base or large."),
    deepspeed_config: Path = typer.Option(
        DEFAULT_DEEPSPEED_CONFIG,
        "--deepspeed-config",
        help="DeepSpeed JSON (ZeRO stage; 'auto' fields filled here).",
    ),
    steps: int = typer.Option(100, "--steps", help="Optimizer steps per stage."),
    stage2_steps: int | None = typer.Option(
        None, "--stage2-steps", help="Steps of stage 2 (default: --steps)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    init_from: Path | None = typer.Option(
        None,
        "--init-from",
        help="Start from this save_pretrained folder (stage 2 defaults to stage 1's result).",
    ),
    batch_size: int = typer.Option(2, "--batch-size", help="Micro-batch size per process."),
    grad_accum: int = typer.Option(1, "--grad-accum", help="Micro-batches accumulated per optimizer step."),
    lr: float = typer.Option(1e-4, "--lr", help="Peak learning rate (AdamW)."),
    warmup_steps: int = typer.Option(
        100, "--warmup-steps", help="Linear warmup steps (each stage warms up)."
    ),
    min_lr_ratio: float = typer.Option(0.1, "--min-lr-ratio", help="Cosine floor as a fraction of --lr."),
    grad_clip: float = typer.Option(1.0, "--grad-clip", help="Gradient norm clipping."),
    ema_decay: float = typer.Option(0.999, "--ema-decay", help="EMA decay of the weights."),
    activation_checkpointing: bool = typer.Option(
        False, "--activation-checkpointing", help="Recompute DiT blocks in backward to save memory."
    ),
    no_binding: bool = typer.Option(
        False, "--no-binding", help="Ablation: references without word-token binding."
    ),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache decoded, resized clips here."),
    split: str = typer.Option("train", "--split", help="Manifest split to train on."),
    checkpoint_every: int = typer.Option(50, "--checkpoint-every", help="Checkpoint every N steps."),
    keep_last: int = typer.Option(3, "--keep-last", help="Checkpoints kept (older ones are deleted)."),
    sample_every: int = typer.Option(
        0, "--sample-every", help="Sample videos every N steps (0: at the end only)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation, data order, augmentation and noise."),
    data_rev: str | None = typer.Option(
        None, "--data-rev", help="DVC revision of the dataset, recorded in MLflow."
    ),
    tracking_uri: str | None = typer.Option(
        None, "--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///work/mlflow.db)."
    ),
    experiment: str = typer.Option("video-alchemist-train", "--experiment", help="MLflow experiment name."),
) -> None:
    """Train stage 1, stage 2 or both; a progress bar shows loss, step rate and ETA."""
    import logging

    from components.train.config import AugmentConfig, DataConfig, OptimConfig, TrainConfig
    from components.train.trainer import train

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = TrainConfig(
        out=out,
        preset=preset,
        stage=stage,
        steps=steps,
        stage2_steps=stage2_steps,
        seed=seed,
        deepspeed_config=deepspeed_config,
        resume=resume,
        activation_checkpointing=activation_checkpointing,
        binding=not no_binding,
        init_from=init_from,
        checkpoint_every=checkpoint_every,
        keep_last=keep_last,
        sample_every=sample_every,
        tracking_uri=tracking_uri,
        experiment=experiment,
        data_rev=data_rev,
        data=DataConfig(
            manifest=manifest,
            split=split,
            batch_size=batch_size,
            num_workers=num_workers,
            cache_dir=cache_dir,
            augment=AugmentConfig(),
        ),
        optim=OptimConfig(
            lr=lr,
            warmup_steps=warmup_steps,
            min_lr_ratio=min_lr_ratio,
            grad_clip=grad_clip,
            grad_accum=grad_accum,
            ema_decay=ema_decay,
        ),
    )
    result = train(config)
    for s in result.stages:
        last = f"{s.losses[-1]:.4f}" if s.losses else "n/a"
        typer.echo(f"stage {s.stage}: {s.steps} steps, last loss {last}, skipped {s.skipped_samples} samples")
    if result.interrupted:
        typer.echo("stopped by SIGTERM after checkpointing; rerun with --resume to continue")
        raise typer.Exit(code=143)
    typer.echo(f"final model: {result.final_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
