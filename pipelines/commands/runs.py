"""`alchemist runs compare RUN_A RUN_B`: the params, metrics and tags that differ between two MLflow runs."""

from __future__ import annotations

import typer

runs_app = typer.Typer(help="Inspect MLflow runs.", no_args_is_help=True)
MISSING = "-"
LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default


def compare_url(tracking_uri: str, runs: list, ui_url: str | None = None) -> str:
    """The MLflow UI's compare page for `runs` (the UI's own route: `#/compare-runs?runs=[..]&experiments=[..]`).

    A server tracking URI is its own UI; a file or database store is served by `mlflow ui` at `ui_url`.
    """
    import json
    from urllib.parse import quote

    base = ui_url or (tracking_uri if tracking_uri.startswith(("http://", "https://")) else LOCAL_UI)
    ids = [r.info.run_id for r in runs]
    experiments = list(dict.fromkeys(r.info.experiment_id for r in runs))
    query = f"runs={quote(json.dumps(ids))}&experiments={quote(json.dumps(experiments))}"
    return f"{base.rstrip('/')}/#/compare-runs?{query}"


def run_differences(run_a, run_b, include_system_tags: bool = False) -> list[tuple[str, str, str, str]]:
    """Rows (kind, key, value in A, value in B) for every param, metric or tag whose values differ."""
    rows = []
    for kind, a, b in (
        ("param", run_a.data.params, run_b.data.params),
        ("metric", run_a.data.metrics, run_b.data.metrics),
        ("tag", run_a.data.tags, run_b.data.tags),
    ):
        for key in sorted(set(a) | set(b)):
            if kind == "tag" and key.startswith("mlflow.") and not include_system_tags:
                continue
            va, vb = a.get(key), b.get(key)
            if va != vb:
                fmt = (
                    (lambda v: MISSING if v is None else f"{v:.6g}")
                    if kind == "metric"
                    else (lambda v: MISSING if v is None else str(v))
                )
                rows.append((kind, key, fmt(va), fmt(vb)))
    return rows


@runs_app.command("compare")
def compare(
    run_a: str = typer.Argument(..., help="First MLflow run id."),
    run_b: str = typer.Argument(..., help="Second MLflow run id."),
    tracking_uri: str = typer.Option(
        None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///work/mlflow.db)."
    ),
    system_tags: bool = typer.Option(False, help="Also compare MLflow's own mlflow.* tags."),
    ui_url: str = typer.Option(
        None, help=f"MLflow UI address for the compare link (default: a server URI itself, else {LOCAL_UI})."
    ),
) -> None:
    """Print a table of the params, metrics and tags whose values differ between RUN_A and RUN_B."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from rich.console import Console
    from rich.table import Table

    from components.train.tracking import tracking_uri as resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        a, b = client.get_run(run_a), client.get_run(run_b)
    except MlflowException as err:
        typer.echo(f"error: cannot read runs {run_a}, {run_b} from {uri}: {err.message}", err=True)
        raise typer.Exit(2) from err
    rows = run_differences(a, b, system_tags)
    console = Console()
    link = compare_url(uri, [a, b], ui_url)
    if not rows:
        console.print(f"Runs {run_a} and {run_b} have the same params, metrics and tags.")
        console.print(f"MLflow UI: {link}", soft_wrap=True)
        return
    table = Table(title=f"{a.info.run_name or run_a} vs {b.info.run_name or run_b}: {len(rows)} differences")
    for column in ("kind", "key", f"A ({run_a[:8]})", f"B ({run_b[:8]})"):
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    console.print(table)
    hint = (
        "" if uri.startswith(("http://", "https://")) else f" (after `mlflow ui --backend-store-uri {uri}`)"
    )
    console.print(f"MLflow UI compare: {link}{hint}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
