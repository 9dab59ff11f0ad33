"""`alchemist promote`: run the promotion gate on an evaluated MLflow run."""

from __future__ import annotations

from pathlib import Path

import typer


def promote_command(
    run_id: str = typer.Option(
        ..., help="MLflow run holding the candidate's eval/* metrics and its model artifact."
    ),
    model_name: str = typer.Option(
        "video-alchemist", help="Registered model name in the MLflow model registry."
    ),
    policy: str = typer.Option("default", help="Gate policy: a YAML path or a bundled name (demo, default)."),
    artifact_path: str = typer.Option(
        "model", help="Run artifact path of the model (checkpoint folder or logged model)."
    ),
    publish_repository: Path = typer.Option(
        None, help="Triton model repository to publish into on pass (version folder = registry version)."
    ),
    triton_name: str = typer.Option("video_alchemist", help="Model name inside the Triton repository."),
    tracking_uri: str = typer.Option(
        None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///work/mlflow.db)."
    ),
) -> None:
    """Decide pass/fail under POLICY, record it on the run, and move the registry aliases accordingly."""
    import mlflow
    from rich.console import Console
    from rich.markdown import Markdown

    from components.promote.gate import PromotionError, promote, repository_publisher
    from components.promote.policy import PolicyError, load_policy
    from pipelines.commands.evaluate import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        gate_policy = load_policy(policy)
        publish = repository_publisher(publish_repository, triton_name) if publish_repository else None
        decision = promote(run_id, model_name, gate_policy, artifact_path=artifact_path, publish=publish)
    except (PolicyError, PromotionError) as err:
        raise typer.BadParameter(str(err)) from err
    console = Console()
    console.print(Markdown(decision.markdown()))
    console.print(
        "changes: " + ("; ".join(decision.actions) if decision.actions else "none (already applied)")
    )


def register(app: typer.Typer) -> None:
    app.command("promote")(promote_command)
