"""MLflow tracking of training runs against a real SQLite store: experiment kind, no stray `Default`
experiment, one run naming scheme, and the DVC data revision as the run's dataset input."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow

from components.train.tracking import (
    EXPERIMENT_KIND,
    EXPERIMENT_KIND_TAG,
    Tracker,
    dvc_remote,
    run_name,
    use_experiment,
)


def test_run_name_is_one_scheme():
    assert (
        run_name("demo-42", 2, "tiny", "f9676f42aa" + "0" * 22 + ".dir")
        == "demo-42/stage2/tiny/data-f9676f42"
    )
    assert run_name("train", 1, "small", None) == "train/stage1/small/data-unknown"
    assert run_name("videos", "evaluate", "bench", None) == "videos/evaluate/bench/data-unknown"


def test_experiment_opens_as_runs_table_and_default_is_hidden(tmp_path: Path, mlflow_template_db: Path):
    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment("0").lifecycle_stage == "active"  # a new store makes `Default` itself
    experiment_id = use_experiment(uri, "video-alchemist-train")
    experiment = client.get_experiment(experiment_id)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
    assert experiment.artifact_location == (tmp_path / "mlartifacts" / "video-alchemist-train").as_uri()
    assert client.get_experiment("0").lifecycle_stage == "deleted"
    assert [e.name for e in client.search_experiments()] == ["video-alchemist-train"]
    assert use_experiment(uri, "video-alchemist-train") == experiment_id  # reuses, does not duplicate


def test_data_revision_is_the_runs_dataset_input(tmp_path: Path, mlflow_template_db: Path):
    from components.version.versioning import version_dataset

    dataset = tmp_path / "data" / "mined"
    dataset.mkdir(parents=True)
    (dataset / "manifest.parquet").write_bytes(b"rows")
    version = version_dataset(dataset, tmp_path / "data")
    assert dvc_remote(dataset) == str(Path(version.remote).resolve())

    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    tracker = Tracker(enabled=True)
    run_id = tracker.start(f"sqlite:///{tmp_path / 'mlflow.db'}", "train", "x/stage1/tiny/data-1", None)
    tracker.log_data_input(dataset, version.rev)
    tracker.log_data_input(dataset, version.rev)  # a resumed run does not log it twice
    tracker.end()
    inputs = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    logged = inputs[0].dataset
    assert logged.name == "mined" and logged.digest == version.rev[:8] and logged.source_type == "dvc"
    source = __import__("json").loads(logged.source)
    assert source["rev"] == version.rev and source["remote"] == str(Path(version.remote).resolve())
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"


def test_samples_sit_beside_their_prompt_and_references(tmp_path: Path, mlflow_template_db: Path):
    import numpy as np

    from components.media import write_gif
    from components.train.samples import SamplePrompt
    from components.train.tracking import SAMPLES_TABLE

    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    prompts = [SamplePrompt("emb-1", "a cat chases a ball", {"cat": [red], "ball": [red]}, red)]
    tracker = Tracker(enabled=True)
    run_id = tracker.start(uri, "train", "x/stage2/tiny/data-1", None)
    for step in (5, 10):
        out = tmp_path / f"step-{step}"
        out.mkdir()
        write_gif(np.zeros((2, 8, 8, 3), np.uint8), out / "00-emb-1.gif")
        (out / "00-emb-1.txt").write_text("a cat chases a ball\n")
        tracker.log_samples(out, step, prompts)
    tracker.end()
    table = mlflow.load_table(SAMPLES_TABLE, run_ids=[run_id], extra_columns=[])
    assert table["step"].tolist() == [5, 10] and set(table["prompt"]) == {"a cat chases a ball"}
    assert table["video"].tolist() == [
        "samples/step-00000005/00-emb-1.gif",
        "samples/step-00000010/00-emb-1.gif",
    ]
    refs = table["references"][0].split(", ")
    assert refs == [
        "samples/step-00000005/00-emb-1.ref-ball-0.png",
        "samples/step-00000005/00-emb-1.ref-cat-0.png",
    ]
    logged = {a.path for a in mlflow.MlflowClient(uri).list_artifacts(run_id, "samples/step-00000005")}
    assert set(refs) <= logged and table["background"][0] in logged
