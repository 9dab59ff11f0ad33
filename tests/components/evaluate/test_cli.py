"""`alchemist evaluate --videos` end to end: benchmark in, report out, MLflow run logged."""

from __future__ import annotations

from pathlib import Path

import mlflow
import typer
from typer.testing import CliRunner

from components.media import write_mp4
from pipelines.commands import evaluate

app = typer.Typer()  # only the command under test (a broken sibling command must not hide it)
evaluate.register(app)
app.command("noop")(lambda: None)  # a second command keeps `evaluate` a named subcommand


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
        "--num-frames",
        "2",
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
    assert run.data.tags["evaluator.num_frames"] == "2"
    at = args.index("--num-frames")
    no_n = CliRunner().invoke(app, args[:at] + args[at + 2 :])
    assert no_n.exit_code == 2 and "pass --num-frames N" in no_n.output


def test_evaluate_of_a_checkpoint_logs_into_its_training_run(
    tmp_path: Path, dog_frames, mlflow_store, make_published, mlflow_template_db
):
    import json
    import shutil

    from model.alchemist import VideoAlchemist
    from model.config import preset

    with mlflow.start_run(experiment_id=mlflow_store, run_name="train/stage2/tiny/data-unknown") as trained:
        pass
    checkpoint = tmp_path / "train" / "stage2" / "final"
    VideoAlchemist(preset("tiny")).save_pretrained(checkpoint)
    (checkpoint / "result.json").write_text(json.dumps({"stage": 2, "mlflow_run_id": trained.info.run_id}))
    bench = make_published(tmp_path / "bench", dog_frames[:4])
    (tmp_path / "evaluators.yaml").write_text("grounding_short_side: 48\ngrounding_max_side: 96\n")
    args = ["evaluate", "--dataset", str(bench), "--checkpoint", str(checkpoint), "--modes", "subject"]
    args += [
        "--num-frames",
        "16",
        "--limit",
        "1",
        "--sample-steps",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--evaluators",
        str(tmp_path / "evaluators.yaml"),
    ]
    args += ["--cache-dir", str(tmp_path / "cache"), "--tracking-uri", mlflow.get_tracking_uri()]
    result = CliRunner().invoke(app, [*args, "--set", "flow.shift=2.0"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"MLflow run: {trained.info.run_id}" in result.output
    logged = mlflow.get_run(trained.info.run_id)
    assert "eval/subject/text_s" in logged.data.metrics
    assert logged.data.tags["evaluator.samples_per_mode"] == "subject=1"
    assert len(logged.data.tags["evaluator.protocol"]) == 12
    assert mlflow.get_experiment_by_name("evaluate") is None  # no stray experiment

    shutil.copy(mlflow_template_db, tmp_path / "other.db")  # a store that never saw the training run
    elsewhere = CliRunner().invoke(app, [*args[:-1], f"sqlite:///{tmp_path / 'other.db'}"])
    assert elsewhere.exit_code == 2 and "is not in the tracking store" in elsewhere.output

    fixed = CliRunner().invoke(app, [*args, "--set", "dit.depth=3"])  # a trained DiT's shape cannot change
    assert (
        fixed.exit_code == 2 and "dit.depth cannot change" in fixed.output and "Traceback" not in fixed.output
    )
