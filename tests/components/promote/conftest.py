"""A real MLflow SQLite store per test, copied from a migrated template.

Creating MLflow's schema runs every migration (tens of seconds on a busy 2-core machine), so the
template is built once and kept in pytest's cache folder, keyed by the MLflow version.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _template_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
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
def mlflow_store(tmp_path: Path, _template_db: Path):
    """Experiment id in a fresh SQLite tracking + registry store with a local artifact folder."""
    import mlflow

    db = tmp_path / "mlflow.db"
    shutil.copy(_template_db, db)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.set_registry_uri(f"sqlite:///{db}")
    experiment = mlflow.create_experiment("gate", artifact_location=(tmp_path / "artifacts").as_uri())
    yield experiment
    mlflow.set_tracking_uri(previous)
    mlflow.set_registry_uri(previous)
