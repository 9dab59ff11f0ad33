"""`alchemist train`: two-stage DeepSpeed training on a mined dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from components.train.config import DEFAULT_DEEPSPEED_CONFIG, TrainConfig, TrainConfigError
from model.config import PRESET_NAMES


def train_command(
    dataset: Path = typer.Option(..., "--dataset", help="Mined dataset folder (manifest.parquet + media/)."),
    out: Path = typer.Option(
        Path("work/train"), "--out", help="Output folder: checkpoints, final models, samples."
    ),
    stage: str | None = typer.Option(
        None,
        "--stage",
        help="1 (text only), 2 (personalization) or both. Default: 2 with --init-from, else both.",
        show_default=False,
    ),
    preset: str = typer.Option(
        "tiny", "--preset", help=f"Model preset: {', '.join(PRESET_NAMES)} (ignored with --init-from)."
    ),
    assignments: list[str] = typer.Option(
        [], "--set", help="Override a config field, e.g. --set dit.depth=4 --set video.frames=9 (repeatable)."
    ),
    text_encoder: str | None = typer.Option(None, "--text-encoder", help="Text encoder folder or s3:// URI."),
    image_encoder: str | None = typer.Option(
        None, "--image-encoder", help="Image encoder folder or s3:// URI."
    ),
    vae: str | None = typer.Option(None, "--vae", help="VAE folder or s3:// URI."),
    deepspeed_config: Path = typer.Option(
        DEFAULT_DEEPSPEED_CONFIG,
        "--deepspeed-config",
        help="DeepSpeed JSON (ZeRO stage; 'auto' fields filled here).",
        show_default="infra/deepspeed/zero2.json",
    ),
    train_steps: int = typer.Option(100, "--train-steps", help="Optimizer steps per stage."),
    stage2_steps: int | None = typer.Option(
        None, "--stage2-steps", help="Optimizer steps of stage 2 (default: --train-steps)."
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue from the newest checkpoint in --out."),
    init_from: str | None = typer.Option(
        None,
        "--init-from",
        help="Start from this model folder or s3:// URI: an imported Wan2.1 (`alchemist model import-wan`) "
        "or a stage-1 result.",
    ),
    trainable: str = typer.Option(
        "full", "--trainable", help="Stage 2 trains: full (everything) or personalization (backbone frozen)."
    ),
    lora_rank: int = typer.Option(
        0,
        "--lora-rank",
        help="LoRA rank on the frozen backbone's attention and FFN (with --trainable personalization).",
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
    compile_dit: bool = typer.Option(
        False, "--compile", help="Run the DiT under torch.compile (slower start, faster steps)."
    ),
    no_binding: bool = typer.Option(
        False, "--no-binding", help="Ablation: references without word-token binding."
    ),
    num_workers: int = typer.Option(0, "--num-workers", help="DataLoader worker processes."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache decoded, resized clips here."),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="Encode-once cache (`alchemist data encode`): train without loading the encoders.",
    ),
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

    from components.configuration import (
        ModelConfigError,
        location_overrides,
        merge_overrides,
        parse_assignments,
    )
    from components.manifest import ManifestError
    from components.train.config import AugmentConfig, DataConfig, OptimConfig
    from components.train.preflight import ResumeError, preflight

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        overrides = merge_overrides(
            parse_assignments(assignments),
            location_overrides(text_encoder=text_encoder, image_encoder=image_encoder, vae=vae),
        )
        config = TrainConfig(
            out=out,
            preset=preset,
            stage=stage or ("2" if init_from else "both"),
            steps=train_steps,
            stage2_steps=stage2_steps,
            seed=seed,
            deepspeed_config=deepspeed_config,
            resume=resume,
            activation_checkpointing=activation_checkpointing,
            compile=compile_dit,
            binding=not no_binding,
            init_from=init_from,
            model_overrides=overrides,
            trainable=trainable,
            lora_rank=lora_rank,
            checkpoint_every=checkpoint_every,
            keep_last=keep_last,
            sample_every=sample_every,
            tracking_uri=tracking_uri,
            experiment=experiment,
            data_rev=data_rev,
            data=DataConfig(
                manifest=dataset,
                split=split,
                batch_size=batch_size,
                num_workers=num_workers,
                cache_dir=cache_dir,
                features=features,
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
        preflight(config)  # in a second, before torch, the process group and DeepSpeed load
        from components.train.trainer import train

        result = train(config)
    except (TrainConfigError, ModelConfigError, ResumeError, ManifestError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    for s in result.stages:
        last = f"{s.losses[-1]:.4f}" if s.losses else "n/a"
        typer.echo(
            f"stage {s.stage}: {s.steps} steps, last loss {last}, skipped {s.skipped_samples} samples, "
            f"MLflow run {s.mlflow_run_id}"
        )
    if result.interrupted:
        typer.echo("stopped by SIGTERM after checkpointing; rerun with --resume to continue")
        raise typer.Exit(code=143)
    typer.echo(f"final model: {result.final_dir}")
    typer.echo(f"run id: {result.stages[-1].mlflow_run_id} (pass it as --run-id to evaluate and promote)")


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
