"""Fixtures shared across folders: a real S3-compatible HTTP endpoint (moto's server) and a real MLflow
SQLite store, both started by the tests.

Creating MLflow's schema runs every migration (tens of seconds on a busy 2-core machine), so the store is
built once as a template, kept in pytest's cache folder keyed by the MLflow version, and copied per test.
"""

import os
import shutil
import socket
from pathlib import Path

import boto3
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch, tmp_path):
    """Point boto3 (and DVC) at the local endpoint with throwaway credentials; returns (client, bucket)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    client = boto3.client("s3")
    bucket = f"bucket-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    client.create_bucket(Bucket=bucket)
    return client, bucket


@pytest.fixture(scope="session")
def mlflow_template_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import mlflow

    name = f"mlflow-template-{mlflow.__version__}"
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    folder = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    path = folder / "mlflow.db"
    if not path.is_file():
        building = folder / f"building-{os.getpid()}.db"
        mlflow.MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()  # runs the migrations
        os.replace(building, path)
    return path


@pytest.fixture
def mlflow_store(tmp_path: Path, mlflow_template_db: Path):
    """Experiment id in a fresh SQLite tracking + registry store with a local artifact folder."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(mlflow_template_db, db)
    # mlflow.set_*_uri also export MLFLOW_*_URI, which subprocesses (kfp.local steps) inherit: restore both.
    previous_env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    previous_tracking = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.set_registry_uri(f"sqlite:///{db}")
    experiment = mlflow.create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    yield experiment
    mlflow.set_tracking_uri(previous_tracking)
    mlflow.set_registry_uri(
        previous_env["MLFLOW_REGISTRY_URI"]
    )  # None: the registry follows the tracking store
    for name, value in previous_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# Hypothesis budgets: `make test` runs a fixed, derandomized budget ("ci"); HYPOTHESIS_PROFILE=nightly runs a
# long randomized one (tests/FUZZING.md). Expensive properties take a fraction of max_examples.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
settings.register_profile(
    "nightly", max_examples=2000, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)  # fmt: skip
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
