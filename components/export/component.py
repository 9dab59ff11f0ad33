"""KFP step: turn the trained checkpoint into a Triton model repository (Python backend)."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def export(model: Input[Model], repository: Output[Model]) -> int:
    """Write version 1 of the model into a fresh repository; the promotion gate publishes it under the
    serving repository's next version, so this artifact stays a self-contained candidate."""
    from components.export import export_model_repository

    result = export_model_repository(model.path, repository.path, version=1)
    repository.metadata.update(
        model_name=result.model_name,
        version=result.version,
        weights_sha256=result.weights_sha256,
        data_rev=model.metadata.get("data_rev", ""),
        mlflow_run_id=model.metadata.get("mlflow_run_id", ""),
    )
    print(f"Triton repository {repository.path}: {result.model_name} v{result.version}")
    return result.version
