"""`alchemist promote` and `alchemist runs compare` against a real SQLite MLflow store."""

from __future__ import annotations

import mlflow
from typer.testing import CliRunner

from pipelines.cli import app


def _run(experiment: str, params: dict, metrics: dict, tags: dict) -> str:
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        mlflow.log_text("{}", "model/config.json")
    return run.info.run_id


def test_runs_compare_lists_only_differences(mlflow_store: str):
    a = _run(mlflow_store, {"lr": "0.001", "preset": "tiny"}, {"eval/subject/text_s": 0.2}, {"stage": "2"})
    b = _run(
        mlflow_store,
        {"lr": "0.002", "preset": "tiny"},
        {"eval/subject/text_s": 0.25, "loss": 1.0},
        {"stage": "2"},
    )
    result = CliRunner().invoke(
        app, ["runs", "compare", a, b, "--tracking-uri", mlflow.get_tracking_uri()], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "lr" in result.output and "0.002" in result.output and "eval/subject/text_s" in result.output
    assert "loss" in result.output and "preset" not in result.output and "stage" not in result.output
    same = CliRunner().invoke(app, ["runs", "compare", a, a, "--tracking-uri", mlflow.get_tracking_uri()])
    assert "same params, metrics and tags" in same.output
    missing = CliRunner().invoke(
        app, ["runs", "compare", a, "0" * 32, "--tracking-uri", mlflow.get_tracking_uri()]
    )
    assert missing.exit_code != 0


def test_promote_command_with_demo_policy_is_idempotent(mlflow_store: str):
    metrics = {"eval/toy/reference_fidelity": 0.7, "eval/toy/binding_accuracy": 0.9}
    run = _run(
        mlflow_store, {}, metrics, {"evaluator.random_weights": "clip,dino,grounding_dino,sam,arcface"}
    )
    args = [
        "promote",
        "--run-id",
        run,
        "--model-name",
        "demo-model",
        "--policy",
        "demo",
        "--tracking-uri",
        mlflow.get_tracking_uri(),
    ]
    first = CliRunner().invoke(app, args, terminal_width=200)
    assert first.exit_code == 0, first.output
    assert "PASS" in first.output and "champion -> version 1" in first.output
    second = CliRunner().invoke(app, args, terminal_width=200)
    assert "PASS" in second.output and "none (already applied)" in second.output
    bad = CliRunner().invoke(
        app, [*args[:-4], "--policy", "nope", "--tracking-uri", mlflow.get_tracking_uri()]
    )
    assert bad.exit_code != 0 and "nope" in bad.output
