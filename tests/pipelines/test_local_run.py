"""The embedded run end to end with kfp.local: what a user checks after `alchemist pipeline run --local`.

One module-scoped run on the tiny preset (6 clips, 1 step per stage) feeds the assertions; a second identical
run must reuse every cached step, and a run on corrupted videos must stop at validation with its report.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from pipelines.local import LocalSettings, PipelineRunError, ServeError, run_local, run_pipeline, stop_server
from pipelines.pipeline import STEP_CODE, code_version

pytestmark = pytest.mark.slow

CACHED_STEPS = {
    "mine-shard",
    "merge-shards",
    "version",
    "validate",
    "train",
    "train-2",
    "evaluate",
    "export",
    "promote",
}
ALWAYS_RUN = {"plan-shards", "summarize", "record-outcome"}


def settings_for(work: Path, **overrides) -> LocalSettings:
    policy = work / "open-policy.yaml"
    if not policy.exists():
        work.mkdir(parents=True, exist_ok=True)
        # Promote whatever passes evaluation, so the test always exercises the publish + serve path.
        policy.write_text(yaml.safe_dump({"name": "open", "allow_random_evaluators": True}))
    base = dict(
        work=work,
        samples=6,
        shards=2,
        preset="tiny",
        stage1_steps=1,
        stage2_steps=1,
        eval_steps=2,
        gate_policy=str(policy),
        http_port=0,
        grpc_port=0,
        metrics_port=0,
        # the few clips may put nothing in `test`; the train split always exists (validation checks it)
        extra={"eval_split": "train", "eval_limit": 1},
    )
    base.update(overrides)
    return LocalSettings(**base)


@pytest.fixture(scope="module")
def code_before():
    return {step: code_version(step) for step in STEP_CODE}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, code_before, mlflow_template_db):
    work = tmp_path_factory.mktemp("work")
    shutil.copy(
        mlflow_template_db, work / "mlflow.db"
    )  # an empty store with MLflow's schema already migrated
    result = run_local(settings_for(work))
    yield result
    stop_server(result.paths)


def test_dataset_is_versioned_with_dvc(first_run):
    rev = first_run.summary["data_rev"]
    assert re.fullmatch(r"[0-9a-f]{32}\.dir", rev)
    dvc_file = first_run.paths.dvc_repo / "datasets" / "mined.dvc"
    assert yaml.safe_load(dvc_file.read_text())["outs"][0]["md5"] == rev
    remote = first_run.paths.dvc_remote
    assert any(p.is_file() for p in remote.rglob("*")), "dvc push left the local remote empty"


def test_validation_passed_with_a_report(first_run):
    report = Path(first_run.summary["validation_report"])
    details = json.loads((report.parent / "validation.json").read_text())
    assert details["success"] is True
    assert details["statistics"]["unsuccessful_expectations"] == 0
    assert "Every expectation was met" in report.read_text()


def test_mlflow_holds_runs_metrics_artifacts_and_an_aliased_version(first_run):
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=first_run.paths.tracking_uri, registry_uri=first_run.paths.tracking_uri
    )
    candidate = client.get_run(first_run.summary["candidate_run"])
    metrics = candidate.data.metrics
    assert any(k.startswith("eval/") for k in metrics), sorted(metrics)
    artifacts = {a.path for a in client.list_artifacts(candidate.info.run_id)}
    assert {"checkpoint", "evaluation"} <= artifacts
    train = client.get_experiment_by_name("video-alchemist-train")
    runs = client.search_runs([train.experiment_id])
    assert len(runs) == 2, "one MLflow run per training stage"
    assert all(r.data.metrics for r in runs)
    assert first_run.summary["decision"] == "pass"
    version = client.get_model_version_by_alias("video_alchemist", "champion")
    assert version.run_id == candidate.info.run_id
    assert str(version.version) == first_run.summary["model_version"]


def test_outcome_recorded_by_the_exit_handler(first_run):
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=first_run.paths.tracking_uri, registry_uri=first_run.paths.tracking_uri
    )
    experiment = client.get_experiment_by_name("video-alchemist-pipeline")
    runs = client.search_runs([experiment.experiment_id], "tags.`pipeline.state` = 'SUCCEEDED'")
    assert runs, "the exit handler recorded no successful run"


def test_published_repository_is_served_by_triton(first_run):
    import urllib.request

    import av

    served = first_run.served
    assert served is not None
    version = first_run.summary["model_version"]
    assert (first_run.paths.serving_repository / "video_alchemist" / version / "model.py").is_file()
    with urllib.request.urlopen(
        f"http://{served.http}/v2/models/video_alchemist/versions/{version}/ready"
    ) as r:
        assert r.status == 200
    with av.open(str(first_run.example_output)) as video:
        frames = list(video.decode(video=0))
    assert len(frames) > 1 and frames[0].width > 0
    assert (
        first_run.example[0].endswith("alchemist generate") and f"--server {served.http}" in first_run.example
    )


def test_run_ends_with_the_reference_check_and_its_strip(first_run):
    check = first_run.reference
    assert check is not None and check.n >= 1
    assert check.line().startswith("reference check: fidelity with correct references ")
    assert check.strip.is_file() and check.gif.is_file()


def test_busy_port_stops_the_run_before_any_step(first_run, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        before = set(first_run.paths.pipeline_root.iterdir())
        with pytest.raises(ServeError, match=rf"port {port} \(HTTP\).*--http-port 0"):
            run_local(settings_for(first_run.paths.root, http_port=port))
    assert set(first_run.paths.pipeline_root.iterdir()) == before


def test_second_run_reuses_every_unchanged_step(first_run, code_before):
    if {step: code_version(step) for step in STEP_CODE} != code_before:
        pytest.skip("library code changed while the first run ran; its steps rightly run again")
    paths, steps, summary = run_pipeline(settings_for(first_run.paths.root, serve=False))
    assert CACHED_STEPS <= set(steps.cached), steps
    assert set(steps.ran) == ALWAYS_RUN, steps
    assert summary["candidate_run"] == first_run.summary["candidate_run"]
    assert summary["data_rev"] == first_run.summary["data_rev"]


def test_corrupted_videos_stop_the_run_at_validation(first_run, tmp_path):
    embedded = first_run.paths.embedded
    corrupt = tmp_path / "corrupt"
    shutil.copytree(embedded / "videos", corrupt)
    shutil.copy(embedded / "captions.jsonl", corrupt / "captions.jsonl")
    for video in corrupt.glob("*.mp4"):
        video.write_bytes(video.read_bytes()[:200])  # truncated: no decodable frame left
    with pytest.raises(PipelineRunError) as failure:
        run_pipeline(settings_for(first_run.paths.root, data=corrupt, serve=False))
    assert failure.value.task == "validate"
    report = failure.value.report
    assert report is not None and report.is_file()
    assert "Failed expectations" in report.read_text()
    import mlflow

    client = mlflow.MlflowClient(
        tracking_uri=first_run.paths.tracking_uri, registry_uri=first_run.paths.tracking_uri
    )
    experiment = client.get_experiment_by_name("video-alchemist-pipeline")
    (failed,) = client.search_runs([experiment.experiment_id], "attributes.status = 'FAILED'")
    assert failed.data.tags["pipeline.failed_step"] == "validate"
    assert [a.path for a in client.list_artifacts(failed.info.run_id, "failure")] == [
        f"failure/{report.name}"
    ]
