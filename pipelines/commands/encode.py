"""`alchemist data encode`: run the frozen encoders once over a mined dataset (the encode-once cache)."""

from __future__ import annotations

from pathlib import Path

import typer

from pipelines.commands.data import data_app


@data_app.command("encode")
def encode(
    dataset: Path = typer.Option(..., "--dataset", help="Mined dataset folder (manifest.parquet + media/)."),
    model: str = typer.Option(
        ...,
        "--model",
        help="The checkpoint training will start from (folder or s3:// URI), e.g. an imported Wan.",
    ),
    out: Path = typer.Option(
        Path("work/features"), "--out", help="Cache root; a keyed folder is made inside."
    ),
    assignments: list[str] = typer.Option(
        [], "--set", help="Override encoder locations or video size, e.g. --set video.frames=33 (repeatable)."
    ),
    split: str = typer.Option("train", "--split", help="Manifest split to encode."),
    data_rev: str | None = typer.Option(None, "--data-rev", help="DVC revision of the dataset, recorded."),
    shard_size: int = typer.Option(64, "--shard-size", help="Samples per safetensors shard."),
) -> None:
    """Write VAE latents, text states and reference tokens per sample; train on them with --features."""
    from components.configuration import ModelConfigError, parse_assignments
    from components.train.config import DataConfig
    from components.train.features import FeatureCacheError, encode_dataset
    from components.train.preflight import sample_size
    from components.weights import load_model

    try:
        if not (dataset / "manifest.parquet").is_file():
            raise FileNotFoundError(f"--dataset {dataset}: no manifest.parquet (run `alchemist mine`)")
        built = load_model(model, overrides=parse_assignments(assignments))
        size = sample_size(DataConfig(), built.config)
        result = encode_dataset(built, dataset, out, size, split, data_rev, shard_size)
    except (FileNotFoundError, ModelConfigError, FeatureCacheError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(
        f"encoded {result.samples} samples into {result.folder} ({len(result.skipped)} unreadable, skipped)"
    )
    typer.echo(f"next: alchemist train --init-from {model} --dataset {dataset} --features {result.folder}")


def register(app: typer.Typer) -> None:
    """Registered through `data_app` (imported above), which `pipelines.commands.data` adds to the app."""
