"""`alchemist promote`: run the promotion gate on an evaluated MLflow run.

Exit codes (components/promote/README.md): 0 PASS, 1 FAIL, 2 error (bad policy, run or registry state).
"""

from __future__ import annotations

from pathlib import Path

import typer


def promote_command(
    run_id: str = typer.Option(
        ...,
        help="MLflow run holding the candidate's eval/* metrics and its model artifact (the training run).",
    ),
    model_name: str = typer.Option(
        "video_alchemist",
        help="The model's name in the MLflow registry and in the Triton repository (the pipeline's too).",
    ),
    policy: str = typer.Option("default", help="Gate policy: a YAML path or a bundled name (demo, default)."),
    artifact_path: str = typer.Option(
        "checkpoint", help="Run artifact path of the model (where `alchemist train` logs its final model)."
    ),
    publish_repository: Path = typer.Option(
        None, help="Triton model repository to publish into on pass (version folder = registry version)."
    ),
    tracking_uri: str = typer.Option(
        None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or sqlite:///work/mlflow.db)."
    ),
) -> None:
    """Decide pass/fail under POLICY, record it on the run and the registry version, move the aliases.

    Exits 0 on PASS, 1 on FAIL, 2 on an error (nothing changed).
    """
    import mlflow

    from components.export import repository_publisher
    from components.promote.gate import EXIT_ERROR, EXIT_FAIL, PromotionError, promote
    from components.promote.policy import PolicyError, load_policy
    from components.train.tracking import tracking_uri as resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        gate_policy = load_policy(policy)
        publish = repository_publisher(publish_repository, model_name) if publish_repository else None
        decision = promote(run_id, model_name, gate_policy, artifact_path=artifact_path, publish=publish)
    except (PolicyError, PromotionError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(EXIT_ERROR) from err
    typer.echo(decision.text(), nl=False)
    typer.echo("changes: " + ("; ".join(decision.actions) if decision.actions else "none (already applied)"))
    if not decision.passed:
        raise typer.Exit(EXIT_FAIL)


def register(app: typer.Typer) -> None:
    app.command("promote")(promote_command)
