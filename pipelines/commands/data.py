"""`alchemist data version`, `validate` and `encode`: the DVC and Great Expectations steps by hand, and the
encode-once cache of the frozen encoders."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(
    help="Version (DVC), validate (Great Expectations) or encode a mined dataset.", no_args_is_help=True
)


@data_app.command("version")
def version(
    dataset: Path = typer.Option(..., "--dataset", help="Mined dataset folder (manifest.parquet + media/)."),
    repo: Path | None = typer.Option(
        None,
        "--repo",
        help="DVC repository holding the dataset folder; created when missing. Default: the dataset's parent.",
    ),
    remote: str | None = typer.Option(
        None,
        "--remote",
        help="Where `dvc push` stores the data: a local folder or s3://bucket/prefix. "
        "Default: the repository's configured remote, else a 'dvc-remote' folder beside the repository.",
    ),
    endpoint_url: str | None = typer.Option(
        None,
        "--endpoint-url",
        help="S3 endpoint for a non-AWS S3 remote (default: $AWS_ENDPOINT_URL when set).",
    ),
) -> None:
    """Record the dataset with `dvc add` + `dvc push` and print its data revision."""
    from components.version import VersionError, version_dataset

    try:
        result = version_dataset(dataset, repo or dataset.resolve().parent, remote, endpoint_url=endpoint_url)
    except VersionError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(
        f"data revision {result.rev}\n  dvc file {result.dvc_file}\n  remote {result.remote}\n"
        f"  {result.num_files} files, {result.size} bytes, {result.pushed} pushed\n"
        f"next: alchemist train ... --data-rev {result.rev}"
    )


@data_app.command("validate")
def validate(
    dataset: str = typer.Option(
        ...,
        "--dataset",
        help="Mined dataset folder (manifest.parquet + media/) or an s3:// prefix holding one.",
    ),
    report: Path = typer.Option(
        ..., "--report", help="Folder for validation.json, validation.html and the per-table GX pages."
    ),
    min_train: int = typer.Option(1, "--min-train", help="Fewest samples the 'train' split must hold."),
    min_val: int = typer.Option(0, "--min-val", help="Fewest samples the 'val' split must hold."),
    min_test: int = typer.Option(0, "--min-test", help="Fewest samples the 'test' split must hold."),
    check_sha256: bool = typer.Option(
        True, "--check-sha256/--no-check-sha256", help="Re-hash every video against the manifest's sha256."
    ),
) -> None:
    """Run the Great Expectations suite; print the summary and exit 1 when any expectation fails."""
    from components.storage import StorageError
    from components.validate import ManifestError, ValidationConfig, validate_dataset

    config = ValidationConfig(
        min_samples_per_split={"train": min_train, "val": min_val, "test": min_test},
        check_sha256=check_sha256,
    )
    try:
        outcome = validate_dataset(dataset, report, config)
    except (ManifestError, StorageError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(outcome.summary())
    if not outcome.success:
        raise typer.Exit(1)


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
    app.add_typer(data_app, name="data")
