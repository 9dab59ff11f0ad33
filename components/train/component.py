"""KFP step: one training stage (DeepSpeed ZeRO) on the versioned dataset, logged to MLflow."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train(
    dataset: Input[Dataset],
    stage: int,
    steps: int,
    preset: str,
    deepspeed_config: str,
    text_encoder: str,
    image_encoder: str,
    vae: str,
    tracking_uri: str,
    experiment: str,
    model: Output[Model],
    metrics: Output[Metrics],
    init: Input[Model] = None,
    learning_rate: float = 1e-4,
    batch_size: int = 2,
    warmup_steps: int = 100,
    base_model: str = "",
    trainable: str = "full",
    lora_rank: int = 0,
    model_overrides: dict = {},  # noqa: B006 - KFP parameters need literal defaults
):
    """Train `stage` (1: text cross-attention only; 2: personalization, from `init`) for `steps` optimizer steps.

    Encoder locations "" mean the preset's (random weights are tagged in MLflow); `base_model` (a folder or
    s3:// URI, e.g. an imported Wan2.1) is where a stage without `init` starts; `deepspeed_config` "" means
    ZeRO-2 from infra/deepspeed. `learning_rate`, `batch_size` (per process) and `warmup_steps` are the
    optimizer's peak rate, micro-batch and linear warmup. The model artifact is the stage's final `save_pretrained` folder (+ EMA).
    """
    import json
    import shutil
    import tempfile
    from pathlib import Path

    from components.configuration import location_overrides, merge_overrides
    from components.train.config import DataConfig, OptimConfig, TrainConfig
    from components.train.trainer import train as run_training

    overrides = merge_overrides(
        model_overrides, location_overrides(text_encoder=text_encoder, image_encoder=image_encoder, vae=vae)
    )
    data_rev = dataset.metadata.get("data_rev", "")
    with tempfile.TemporaryDirectory(prefix=f"train-stage{stage}-") as work:
        config = TrainConfig(
            out=Path(work),
            preset=preset,
            stage=str(stage),
            steps=steps,
            init_from=init.path if init is not None else (base_model or None),
            model_overrides=overrides,
            trainable=trainable if stage == 2 else "full",
            lora_rank=lora_rank,
            tracking_uri=tracking_uri or None,
            experiment=experiment,
            run_name=f"{preset}-{data_rev[:8] or 'data'}",
            data_rev=data_rev or None,
            # decoded clips are cached for the stage: every epoch after the first reads arrays, not MP4s
            data=DataConfig(
                manifest=Path(dataset.path), batch_size=batch_size, cache_dir=Path(work) / "clips"
            ),
            optim=OptimConfig(lr=learning_rate, warmup_steps=warmup_steps),
            **({"deepspeed_config": Path(deepspeed_config)} if deepspeed_config else {}),
        )
        result = run_training(config)
        if result.final_dir is None:
            raise RuntimeError(f"training stage {stage} was interrupted before it finished")
        shutil.copytree(result.final_dir, model.path)
    (stage_result,) = result.stages
    for name, value in result.metrics.items():
        metrics.log_metric(name.replace("/", "_"), value)
    model.metadata.update(
        stage=stage,
        preset=preset,
        data_rev=data_rev,
        mlflow_run_id=stage_result.mlflow_run_id or "",
        steps=steps,
    )
    # kfp.local keeps metrics in metadata only and treats a cached artifact without a file as a miss.
    Path(metrics.path).write_text(json.dumps(metrics.metadata, indent=2))
    print(f"stage {stage}: {steps} steps, metrics {result.metrics}, MLflow run {stage_result.mlflow_run_id}")


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_multinode(
    dataset: Input[Dataset],
    stage: int,
    steps: int,
    preset: str,
    deepspeed_config: str,
    tracking_uri: str,
    experiment: str,
    nodes: int,
    gpus_per_node: int,
    image: str,
    namespace: str,
    shared_dir: str,
    model: Output[Model],
    metrics: Output[Metrics],
    init: Input[Model] = None,
    learning_rate: float = 1e-4,
    batch_size: int = 2,
    warmup_steps: int = 100,
):
    """Train `stage` as a PyTorchJob over `nodes` nodes (torchrun on every GPU) and wait for it.

    The dataset, the stage-1 weights and the result move through `shared_dir`, a ReadWriteMany volume this
    step and the job's pods mount (infra/k8s/pipeline/shared-pvc.yaml).
    """
    import json
    import shutil
    import uuid
    from pathlib import Path

    from components.train.pytorchjob import render_pytorchjob, run_pytorchjob

    work = Path(shared_dir) / f"stage{stage}-{uuid.uuid4().hex[:10]}"
    shutil.copytree(dataset.path, work / "dataset")
    data_rev = dataset.metadata.get("data_rev", "")
    command = ["alchemist", "train", "--dataset", str(work / "dataset"), "--out", str(work / "train")]
    command += [
        "--stage",
        str(stage),
        "--preset",
        preset,
        "--train-steps",
        str(steps),
        "--experiment",
        experiment,
        "--lr",
        str(learning_rate),
        "--batch-size",
        str(batch_size),
        "--warmup-steps",
        str(warmup_steps),
    ]
    if data_rev:
        command += ["--data-rev", data_rev]
    if init is not None:
        shutil.copytree(init.path, work / "init")
        command += ["--init-from", str(work / "init")]
    if deepspeed_config:
        command += ["--deepspeed-config", deepspeed_config]
    if tracking_uri:
        command += ["--tracking-uri", tracking_uri]
    job = render_pytorchjob(f"alchemist-train-{work.name}", image, command, nodes, gpus_per_node, namespace)
    run_pytorchjob(job)
    final = work / "train" / f"stage{stage}" / "final"
    shutil.copytree(final, model.path)
    result = json.loads((final / "result.json").read_text())
    losses = result.get("losses") or [float("nan")]
    metrics.log_metric(f"stage{stage}_final_loss", losses[-1])
    model.metadata.update(
        stage=stage,
        preset=preset,
        data_rev=data_rev,
        mlflow_run_id=result.get("mlflow_run_id") or "",
        steps=steps,
    )
    Path(metrics.path).write_text(json.dumps(metrics.metadata, indent=2))
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"stage {stage} on {nodes} nodes x {gpus_per_node} GPUs: MLflow run {model.metadata['mlflow_run_id']}"
    )
