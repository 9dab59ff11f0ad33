"""MLflow for training runs: parameters, data revision, per-step metrics, samples, the final checkpoint.

Only rank 0 talks to MLflow. The run id is stored in each checkpoint so a resumed run keeps writing into the
same MLflow run rather than starting a new one.

Every experiment the platform creates is tagged as a classic ML experiment (MLflow 3 otherwise opens it
in GenAI mode with a traces view and no runs table), every run is named by `run_name`, and the data
revision is logged as an MLflow dataset input so the runs table's Dataset column tells data apart.
"""

from __future__ import annotations

import configparser
import os
import subprocess
from pathlib import Path
from typing import Any

from mlflow.data.dataset_source import DatasetSource

from components.train.config import REPO_ROOT

DEFAULT_TRACKING_URI = "sqlite:///work/mlflow.db"
MAX_PARAM_LENGTH = 500  # MLflow's limit on a parameter value
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # read by the MLflow 3 UI to pick the experiment's view
EXPERIMENT_KIND = "custom_model_development"  # the runs table, not the GenAI traces view
DEFAULT_EXPERIMENT_ID = "0"
UNKNOWN_REV = "unknown"
SAMPLES_TABLE = "samples/table.json"


def tracking_uri(explicit: str | None) -> str:
    """The one resolution every step and command uses: explicit URI, else $MLFLOW_TRACKING_URI, else the
    embedded default SQLite file under work/ (made here, so a first run on a fresh checkout can open it)."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    if uri == DEFAULT_TRACKING_URI:
        Path("work").mkdir(exist_ok=True)
    return uri


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


def run_name(pipeline_run: str, stage: int | str, preset: str, data_rev: str | None) -> str:
    """One naming scheme for every run the platform creates: `<pipeline run>/<stage>/<preset>/data-<rev>`.

    `stage` is `stage1`/`stage2` for training (an int is spelled so) or a step name such as `evaluate`;
    the data revision is shortened to 8 characters, as in the DVC file.
    """
    stage = f"stage{stage}" if isinstance(stage, int) else stage
    rev = (data_rev or UNKNOWN_REV).removesuffix(".dir")[:8]
    return f"{pipeline_run}/{stage}/{preset}/data-{rev}"


def use_experiment(uri: str, experiment: str) -> str:
    """Point MLflow at `uri` and `experiment` (created when missing) and return the experiment id.

    A SQLite store keeps artifacts beside its database file (not in ./mlruns of whatever the current
    directory is); the experiment is tagged as a classic ML experiment; and the `Default` experiment
    a new SQLite store makes on its own (empty, pointing at ./mlruns) is hidden so it is not a stray.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        location = None
        if uri.startswith("sqlite:///"):
            db = Path(uri.removeprefix("sqlite:///")).resolve()
            db.parent.mkdir(parents=True, exist_ok=True)
            location = (db.parent / "mlartifacts" / experiment).as_uri()
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    if (found is None or found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND) and experiment_id:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    _hide_empty_default(client, experiment_id)
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _hide_empty_default(client: Any, keep: str) -> None:
    """Delete (MLflow's soft delete) the store's own `Default` experiment while it holds no run."""
    from mlflow.exceptions import MlflowException

    if keep == DEFAULT_EXPERIMENT_ID:
        return
    try:
        default = client.get_experiment(DEFAULT_EXPERIMENT_ID)
    except MlflowException:  # a server without experiment 0
        return
    if default.lifecycle_stage == "active" and not client.search_runs([DEFAULT_EXPERIMENT_ID], max_results=1):
        client.delete_experiment(DEFAULT_EXPERIMENT_ID)


def dvc_remote(dataset_dir: str | Path) -> str | None:
    """The default remote URL of the DVC repository holding `dataset_dir` (None when it is not versioned)."""
    here = Path(dataset_dir).resolve()
    for folder in (here, *here.parents):
        config = folder / ".dvc" / "config"
        if config.is_file():
            parser = configparser.ConfigParser()
            parser.read(config)
            name = parser.get("core", "remote", fallback=None)
            section = f"'remote \"{name}\"'"
            if name is None or not parser.has_option(section, "url"):
                return None
            url = parser.get(section, "url")
            # DVC writes a local remote relative to the .dvc folder
            return url if "://" in url or Path(url).is_absolute() else str((folder / ".dvc" / url).resolve())
    return None


def data_input(dataset_dir: str | Path, data_rev: str | None, remote: str | None = None) -> Any:
    """An MLflow dataset for `mlflow.log_input`: named after the folder, digest = the DVC revision,
    source = where DVC can rebuild it from (revision + remote)."""
    from mlflow.data.meta_dataset import MetaDataset

    rev = data_rev or UNKNOWN_REV
    source = DvcSource(rev, remote or dvc_remote(dataset_dir) or "", str(dataset_dir))
    return MetaDataset(source, name=Path(dataset_dir).name, digest=rev.removesuffix(".dir")[:8])


class DvcSource(DatasetSource):
    """A DVC-versioned folder: the revision and the remote it can be pulled from."""

    def __init__(self, rev: str, remote: str, path: str) -> None:
        self.rev, self.remote, self.path = rev, remote, path

    @staticmethod
    def _get_source_type() -> str:
        return "dvc"

    def load(self) -> str:
        return self.path

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> DvcSource:
        raise NotImplementedError("a DVC source is built from a revision, not resolved from a string")

    def to_dict(self) -> dict[str, Any]:
        return {"rev": self.rev, "remote": self.remote, "path": self.path}

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> DvcSource:
        return cls(source_dict["rev"], source_dict.get("remote", ""), source_dict.get("path", ""))


def write_references(
    out_dir: Path, stem: str, references: dict[str, list[Any]], background: Any = None
) -> None:
    """`<stem>.ref-<word>-<k>.png` (and `<stem>.background.png`) beside the sample video."""
    from PIL import Image

    for word, images in references.items():
        for k, image in enumerate(images):
            Image.fromarray(image).save(out_dir / f"{stem}.ref-{word.replace('/', '_')}-{k}.png")
    if background is not None:
        Image.fromarray(background).save(out_dir / f"{stem}.background.png")


def sample_rows(out_dir: Path, folder: str, step: int) -> list[dict[str, Any]]:
    """Per sample video in `out_dir`: step, sample, prompt (its .txt) and artifact paths of video and references."""
    rows = []
    for gif in sorted(Path(out_dir).glob("*.gif")):
        stem = gif.stem
        text = gif.with_suffix(".txt")
        refs = sorted(p.name for p in Path(out_dir).glob(f"{stem}.ref-*.png"))
        background = gif.with_name(f"{stem}.background.png")
        rows.append(
            {
                "step": step,
                "sample": stem.split("-", 1)[-1],
                "prompt": text.read_text().strip() if text.is_file() else "",
                "video": f"{folder}/{gif.name}",
                "references": ", ".join(f"{folder}/{name}" for name in refs),
                "background": f"{folder}/{background.name}" if background.is_file() else "",
            }
        )
    return rows


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

    def log_data_input(
        self, dataset_dir: str | Path, data_rev: str | None, context: str = "training"
    ) -> None:
        """The data revision as the run's dataset input (once per run: a resumed run does not repeat it)."""
        if not self.enabled:
            return
        import mlflow

        if not mlflow.MlflowClient().get_run(self.run_id).inputs.dataset_inputs:
            mlflow.log_input(data_input(dataset_dir, data_rev), context=context)

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

    def log_samples(self, out_dir: Path, step: int, prompts: list[Any] | None = None) -> None:
        """One step's sample videos, and rows of the run's `samples/table.json` that put each video beside
        its prompt and its reference images (written here from `prompts`, the trainer's `SamplePrompt`s)."""
        if not self.enabled:
            return
        import mlflow

        folder = f"samples/step-{step:08d}"
        for i, item in enumerate(prompts or []):
            write_references(out_dir, f"{i:02d}-{item.sample_id}", item.references, item.background)
        mlflow.log_artifacts(str(out_dir), folder)
        rows = sample_rows(out_dir, folder, step)
        if rows:  # log_table appends to the run's table, one row per sample and step
            mlflow.log_table({k: [r[k] for r in rows] for k in rows[0]}, artifact_file=SAMPLES_TABLE)

    def end(self, status: str = "FINISHED") -> None:
        if self.enabled and self.run_id is not None:
            import mlflow

            mlflow.end_run(status=status)
            self.run_id = None
