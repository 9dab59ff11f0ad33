"""MLflow for training runs: parameters, data revision, per-step metrics, samples, the final checkpoint.

Only rank 0 talks to MLflow. The run id is stored in each checkpoint so a resumed run keeps writing into the
same MLflow run rather than starting a new one.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from components.train.config import REPO_ROOT

DEFAULT_TRACKING_URI = "sqlite:///work/mlflow.db"
MAX_PARAM_LENGTH = 500  # MLflow's limit on a parameter value


def tracking_uri(explicit: str | None) -> str:
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def use_experiment(uri: str, experiment: str) -> None:
    """Point MLflow at `uri` and `experiment`; a SQLite store keeps artifacts beside its database file
    (not in ./mlruns of whatever the current directory is)."""
    import mlflow

    mlflow.set_tracking_uri(uri)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///")).resolve()
        db.parent.mkdir(parents=True, exist_ok=True)
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment, artifact_location=(db.parent / "mlartifacts").as_uri())
    mlflow.set_experiment(experiment)


class Tracker:
    """A thin layer over one MLflow run; every call is a no-op on ranks other than 0."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.run_id: str | None = None

    def start(
        self,
        uri: str,
        experiment: str,
        run_name: str | None,
        run_id: str | None,
    ) -> str | None:
        if not self.enabled:
            return None
        import mlflow

        use_experiment(uri, experiment)
        run = mlflow.start_run(run_id=run_id, run_name=run_name, log_system_metrics=True)
        self.run_id = run.info.run_id
        return self.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        if not self.enabled:
            return
        import mlflow

        client = mlflow.MlflowClient()
        logged = client.get_run(self.run_id).data.params
        fresh = {k: str(v)[:MAX_PARAM_LENGTH] for k, v in params.items() if k not in logged}
        if fresh:  # a resumed run may not re-log a parameter (MLflow refuses changed values)
            mlflow.log_params(fresh)

    def set_tags(self, tags: dict[str, Any]) -> None:
        if self.enabled:
            import mlflow

            mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_metrics(metrics, step=step)

    def log_artifacts(self, local_dir: Path, artifact_path: str) -> None:
        if self.enabled:
            import mlflow

            mlflow.log_artifacts(str(local_dir), artifact_path)

    def end(self, status: str = "FINISHED") -> None:
        if self.enabled and self.run_id is not None:
            import mlflow

            mlflow.end_run(status=status)
            self.run_id = None
