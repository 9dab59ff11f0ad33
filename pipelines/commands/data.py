"""`alchemist data version` and `alchemist data validate`: the DVC and Great Expectations steps by hand."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(
    help="Version (DVC) and validate (Great Expectations) a mined dataset.", no_args_is_help=True
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


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
