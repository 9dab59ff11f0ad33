"""A promoted registry version into a Triton model repository: the `publish` the promotion gate calls on pass.

It lives with the export step, so that the gate (components/promote) takes it as a plain callable and never
imports another step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from components.export.repository import export_model_repository


def repository_publisher(
    repository_dir: str | Path, triton_model_name: str = "video_alchemist"
) -> Callable[[str], None]:
    """Publish a registry version into a Triton model repository (version folder = registry version).

    The version's artifact must be a model checkpoint folder (config.json + model.safetensors); an
    already exported version folder is left as it is.
    """

    def publish(model_uri: str) -> None:
        import mlflow

        version = int(model_uri.rsplit("/", 1)[-1])
        if (Path(repository_dir) / triton_model_name / str(version)).exists():
            return
        checkpoint = mlflow.artifacts.download_artifacts(artifact_uri=model_uri)
        export_model_repository(checkpoint, repository_dir, model_name=triton_model_name, version=version)

    return publish
