"""`alchemist evaluate --videos` end to end: benchmark in, report out, MLflow run logged."""

from __future__ import annotations

from pathlib import Path

import mlflow
from typer.testing import CliRunner

from components.media import write_mp4
from pipelines.cli import app


def test_evaluate_command_writes_report_and_logs(tmp_path: Path, dog_frames, mlflow_store, make_published):
    bench = make_published(tmp_path / "bench", dog_frames[:4])
    write_mp4(dog_frames[:2], tmp_path / "videos" / "subject" / "video1.mp4")
    (tmp_path / "evaluators.yaml").write_text("grounding_short_side: 48\ngrounding_max_side: 96\n")
    args = [
        "evaluate",
        "--benchmark",
        str(bench),
        "--videos",
        str(tmp_path / "videos"),
        "--modes",
        "subject",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--evaluators",
        str(tmp_path / "evaluators.yaml"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--tracking-uri",
        mlflow.get_tracking_uri(),
        "--experiment",
        "cli",
    ]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "Random-weight evaluators" in result.output and (tmp_path / "out" / "report.html").is_file()
    run = mlflow.search_runs(experiment_names=["cli"], output_format="list")[0]
    assert "eval/subject/subj_s" in run.data.metrics and run.data.params["layout"] == "published"
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())  # beside the database
    both = CliRunner().invoke(app, [*args, "--checkpoint", str(tmp_path)])
    assert both.exit_code != 0 and "exactly one" in both.output
