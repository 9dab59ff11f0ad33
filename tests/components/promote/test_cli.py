"""`alchemist promote` and `alchemist runs compare` against a real SQLite MLflow store."""

from __future__ import annotations

import json
from urllib.parse import unquote

import mlflow
import typer
from typer.testing import CliRunner

from components.promote.gate import EXIT_ERROR, EXIT_FAIL, EXIT_PASS
from pipelines.commands import promote, runs

app = typer.Typer()  # only the commands under test, so a broken sibling command cannot hide these
promote.register(app)
runs.register(app)


def _run(experiment: str, params: dict, metrics: dict, tags: dict) -> str:
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.set_tags(tags)
        mlflow.log_text("{}", "checkpoint/config.json")
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
    link = next(line for line in result.output.splitlines() if "compare-runs" in line).split()[3]
    assert link.startswith("http://127.0.0.1:5000/#/compare-runs?runs=")
    query = dict(part.split("=", 1) for part in link.split("?", 1)[1].split("&"))
    assert json.loads(unquote(query["runs"])) == [a, b]
    assert json.loads(unquote(query["experiments"])) == [mlflow_store]
    same = CliRunner().invoke(app, ["runs", "compare", a, a, "--tracking-uri", mlflow.get_tracking_uri()])
    assert "same params, metrics and tags" in same.output
    missing = CliRunner().invoke(
        app, ["runs", "compare", a, "0" * 32, "--tracking-uri", mlflow.get_tracking_uri()]
    )
    assert missing.exit_code == 2 and "cannot read runs" in missing.output


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
    assert first.exit_code == EXIT_PASS == 0, first.output
    assert "PASS" in first.output and "champion -> version 1" in first.output
    summary = mlflow.artifacts.load_text(f"runs:/{run}/promotion/summary.md")
    assert "| data.rev | data |" in summary and "no data revision (data.rev); allowed by policy" in summary
    second = CliRunner().invoke(app, args, terminal_width=200)
    assert "PASS" in second.output and "none (already applied)" in second.output


def test_promote_exit_codes_pass_fail_error(mlflow_store: str):
    uri = mlflow.get_tracking_uri()
    tags = {"evaluator.random_weights": "clip", "data.rev": "d" * 32 + ".dir"}
    weak = _run(mlflow_store, {}, {"eval/toy/reference_fidelity": 0.1}, tags)

    def gate(run_id: str, policy: str = "demo"):
        args = ["promote", "--run-id", run_id, "--policy", policy, "--tracking-uri", uri]
        return CliRunner().invoke(app, args, terminal_width=200)

    failed = gate(weak)
    assert failed.exit_code == EXIT_FAIL == 1 and "FAIL" in failed.output
    assert "FAIL toy/reference_fidelity (threshold): 0.1000 < threshold 0.2000" in failed.output
    assert "challenger -> version 1" in failed.output
    bad_policy = gate(weak, "nope")
    assert bad_policy.exit_code == EXIT_ERROR == 2
    assert (
        bad_policy.output.strip().startswith("error: policy 'nope'") and "Traceback" not in bad_policy.output
    )
    assert len(bad_policy.output.strip().splitlines()) == 1
    missing = gate("0" * 32)
    assert missing.exit_code == EXIT_ERROR and "not found" in missing.output
    with mlflow.start_run(experiment_id=mlflow_store) as bare:
        mlflow.log_metric("eval/toy/reference_fidelity", 0.9)
    no_model = gate(bare.info.run_id)
    assert no_model.exit_code == EXIT_ERROR and "no artifacts under 'checkpoint'" in no_model.output
