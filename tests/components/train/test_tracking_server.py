"""Against a real `mlflow server` (started here on a free loopback port): the experiment the platform
creates is a classic ML experiment, so the MLflow 3 UI opens its runs table, not the GenAI traces view."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from components.train.tracking import EXPERIMENT_KIND_TAG, use_experiment
from tests.helpers.processes import free_port, stop


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def mlflow_server(tmp_path: Path, mlflow_template_db: Path):
    """URL of a real `mlflow server` over a fresh SQLite store; stopped (and waited for) afterwards."""
    shutil.copy(mlflow_template_db, tmp_path / "server.db")
    port = free_port()
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow_cli), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}"]
    command += ["--artifacts-destination", str(tmp_path / "artifacts")]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{url}/api/2.0/mlflow/experiments/search?max_results=1")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"mlflow server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)
        yield url
    finally:
        stop(server)
        log.close()


def test_platform_experiment_is_not_in_genai_mode(mlflow_server: str, monkeypatch):
    import mlflow

    previous = mlflow.get_tracking_uri()
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(name, raising=False)  # restored after the test, whatever use_experiment exports
    try:
        use_experiment(mlflow_server, "video-alchemist-train")
    finally:
        mlflow.set_tracking_uri(previous)
    found = _get(
        f"{mlflow_server}/api/2.0/mlflow/experiments/get-by-name?experiment_name={quote('video-alchemist-train')}"
    )
    tags = {t["key"]: t["value"] for t in found["experiment"].get("tags", [])}
    assert tags[EXPERIMENT_KIND_TAG] == "custom_model_development"  # not genai_development
    listed = _get(f"{mlflow_server}/api/2.0/mlflow/experiments/search?max_results=10")["experiments"]
    assert [e["name"] for e in listed] == ["video-alchemist-train"]  # the empty `Default` is hidden
