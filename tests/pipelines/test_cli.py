"""`alchemist pipeline ...`: the commands a user types, with their errors."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from pipelines.cli import app

runner = CliRunner()


def test_compile_writes_the_cluster_pipeline(tmp_path):
    out = tmp_path / "pipeline.yaml"
    result = runner.invoke(
        app,
        ["pipeline", "compile", "--out", str(out), "--image", "reg.test/alchemist:2", "--gpus", "2",
         "--node-selector", "pool=a100", "--train-nodes", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    spec, platform = yaml.safe_load_all(out.read_text())
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"reg.test/alchemist:2"}
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert k8s["exec-evaluate"]["nodeSelector"]["labels"] == {"pool": "a100"}
    assert "exec-train-multinode" in k8s


def test_run_without_local_points_to_compile_and_submit():
    result = runner.invoke(app, ["pipeline", "run"])
    assert result.exit_code == 2
    assert "compile" in result.output and "submit" in result.output


def test_submit_explains_what_is_missing(tmp_path):
    missing = runner.invoke(
        app,
        [
            "pipeline",
            "submit",
            "--host",
            "http://kfp",
            "--experiment",
            "e",
            "--package",
            str(tmp_path / "x.yaml"),
        ],
    )
    assert missing.exit_code != 0 and "alchemist pipeline compile" in missing.output
    package = tmp_path / "p.yaml"
    package.write_text("{}")
    no_data = runner.invoke(
        app, ["pipeline", "submit", "--host", "http://kfp", "--experiment", "e", "--package", str(package)]
    )
    assert no_data.exit_code != 0 and "data" in no_data.output
    local_remote = runner.invoke(
        app,
        ["pipeline", "submit", "--host", "h", "--experiment", "e", "--package", str(package), "--param", "data=s3://b/v",
         "--param", "dvc_remote=/tmp/remote", "--param", "serving_repository=s3://b/triton"],
    )  # fmt: skip
    assert local_remote.exit_code != 0 and "dvc_remote=s3://" in local_remote.output
    bad = runner.invoke(
        app,
        [
            "pipeline",
            "submit",
            "--host",
            "h",
            "--experiment",
            "e",
            "--package",
            str(package),
            "--param",
            "oops",
        ],
    )
    assert bad.exit_code != 0 and "KEY=VALUE" in bad.output
