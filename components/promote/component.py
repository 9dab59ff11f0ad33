"""KFP step: the promotion gate; on pass the exported Triton version is published to the serving repository."""

from kfp import dsl
from kfp.dsl import Input, Markdown, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def promote(
    candidate_run: str,
    repository: Input[Model],
    policy: str,
    registered_model: str,
    serving_repository: str,
    tracking_uri: str,
    summary: Output[Markdown],
) -> str:
    """Decide on the evaluated training run under `policy` (a bundled name or a YAML path) and apply it.

    Pass: the run's checkpoint becomes registry version N with alias `champion`, and the exported repository's
    model is published as version N of `serving_repository` (a folder or s3:// prefix; "" publishes nothing).
    Fail: alias `challenger`; nothing served changes. Returns "pass" or "fail".
    """
    from pathlib import Path

    import mlflow

    from components.promote.gate import exported_publisher
    from components.promote.gate import promote as apply_gate
    from components.promote.policy import load_policy

    triton_name = repository.metadata.get("model_name", "video_alchemist")
    exported_version = str(int(repository.metadata.get("version", 1)))  # artifact metadata numbers are floats
    publish = exported_publisher(Path(repository.path), triton_name, exported_version, serving_repository)
    if tracking_uri:
        # the registry lives in the same store; never inherit a registry URI from the environment
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    decision = apply_gate(
        candidate_run,
        registered_model,
        load_policy(policy or "demo"),
        artifact_path="checkpoint",
        publish=publish if serving_repository else None,
    )
    Path(summary.path).write_text(decision.markdown())
    summary.metadata.update(
        decision=decision.decision, version=decision.version or "", actions=decision.actions
    )
    print(decision.markdown())
    return decision.decision
