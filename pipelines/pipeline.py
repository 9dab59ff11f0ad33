"""The Video Alchemist pipeline: one KFP DAG that runs under kfp.local and compiles for the cluster.

mine (fanned out over shards, merged) -> version (DVC) -> validate (GX; a failure stops the run) ->
train stage 1 -> train stage 2 -> evaluate -> export (Triton repository) -> promote (gate),
all inside an exit handler that records the run's outcome in MLflow.
"""

import hashlib
from functools import partial
from pathlib import Path
from typing import Any

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Model, Output

from components.image import COMPONENT_IMAGE
from pipelines.cluster import ClusterOptions, use_gpus, use_platform

PIPELINE_NAME = "video-alchemist"
REPO = Path(__file__).resolve().parents[1]

# MLflow experiments the steps log into (the local run creates them with artifact folders under work/).
EXPERIMENTS = {"pipeline": "video-alchemist-pipeline", "train": "video-alchemist-train"}

# The library code behind each step. Its hash is set as an environment variable on the step, which is part of
# the step's cache key, so editing a library re-runs its step (and, through new outputs, what follows).
STEP_CODE = {
    "mine": ["components/mine", "components/storage.py"],
    "version": ["components/version"],
    "validate": ["components/validate"],
    "train": ["components/train", "model", "infra/deepspeed"],
    "evaluate": ["components/evaluate", "model"],
    "export": ["components/export", "serving", "model"],
    "promote": ["components/promote", "serving"],
}
CODE_ENV = "ALCHEMIST_CODE_VERSION"
SHARED_MOUNT = "/shared"  # where multi-node training steps mount the volume they share with the PyTorchJob
NETWORK_RETRIES = 3  # steps that read or write S3, MLflow or an LLM endpoint retry transient failures


def code_version(step: str) -> str:
    """Hash of the sources a step runs (paths and contents), stable across machines and checkouts."""
    digest = hashlib.sha256()
    for entry in STEP_CODE[step]:
        root = REPO / entry
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            if "__pycache__" in path.parts or path.suffix == ".pyc":
                continue
            digest.update(str(path.relative_to(REPO)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _step(
    task: Any, step: str, cluster: ClusterOptions | None, gpu: bool = False, network: bool = False
) -> Any:
    """Common settings of a step: code version, retries, and on the cluster image, secrets and GPUs."""
    task.set_env_variable(CODE_ENV, code_version(step))
    if cluster is not None:
        # Only the cluster's steps talk to S3, the MLflow server or an LLM endpoint; locally every service
        # is a file, a retry could only repeat a deterministic failure.
        if network:
            task.set_retry(num_retries=NETWORK_RETRIES, backoff_duration="30s", backoff_factor=2.0)
        use_platform(task, cluster)
        if gpu:
            use_gpus(task, cluster.gpu_pool)
    return task


def _train_step(task: Any, cluster: ClusterOptions | None) -> Any:
    """A training stage: on one GPU node it trains in its own pod; over several it only launches and waits
    for a PyTorchJob, so it needs no GPU itself but the volume it shares with the job."""
    if cluster is not None and cluster.train_nodes > 1:
        from kfp import kubernetes

        kubernetes.mount_pvc(task, pvc_name=cluster.shared_volume, mount_path=SHARED_MOUNT)
        return _step(task, "train", cluster, network=True)
    return _step(task, "train", cluster, gpu=True, network=True)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def record_outcome(
    status: dsl.PipelineTaskFinalStatus, tracking_uri: str, experiment: str, pipeline_run: str
):
    """Exit handler: one MLflow run per pipeline run with its final state and, on failure, the error."""
    import mlflow

    from components.train.tracking import use_experiment

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    use_experiment(
        mlflow.get_tracking_uri(), experiment
    )  # a classic ML experiment: the UI opens its runs table
    failed = status.state != "SUCCEEDED"
    with mlflow.start_run(run_name=f"pipeline {pipeline_run}") as run:
        mlflow.set_tags(
            {
                "pipeline.run": pipeline_run,
                "pipeline.state": status.state,
                "pipeline.task": status.pipeline_task_name,
                "pipeline.error": status.error_message or "",
            }
        )
        if failed:
            mlflow.log_text(f"{status.state}: {status.error_message}\n", "failure.txt")
    if failed:
        mlflow.MlflowClient().set_terminated(run.info.run_id, status="FAILED")
    print(f"pipeline {pipeline_run}: {status.state} (MLflow run {run.info.run_id})")


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def summarize(
    dataset: Input[Dataset],
    model: Input[Model],
    validation: Input[Artifact],
    evaluation: Input[Artifact],
    gate: Input[Markdown],
    candidate_run: str,
    decision: str,
    summary: Output[Artifact],
):
    """Where to look after a run: one JSON with the data revision, the reports, the MLflow run and the decision.

    The report links point into the steps' detail folders, where the pages' own links (GX data docs, GIFs) work.

    Never cached, so every run (even one whose steps were all reused) writes its own summary.
    """
    import json
    from pathlib import Path

    record = {
        "dataset": dataset.path,
        "model": model.path,
        "data_rev": dataset.metadata.get("data_rev", ""),
        "dvc_remote": dataset.metadata.get("remote", ""),
        "validation_report": f"{validation.uri}/validation.html",
        "evaluation_report": f"{evaluation.uri}/report.html",
        "gate_summary": gate.uri,
        "candidate_run": candidate_run,
        "decision": decision,
        "model_version": gate.metadata.get("version", ""),
        "gate_actions": gate.metadata.get("actions", []),
    }
    Path(summary.path).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


def build_pipeline(cluster: ClusterOptions | None = None):
    """The pipeline function; `cluster` adds image, secrets and GPU scheduling (None: the embedded run)."""
    from components.evaluate.component import evaluate
    from components.export.component import export
    from components.mine.component import merge_shards, mine_shard, plan_shards
    from components.promote.component import promote
    from components.train.component import train, train_multinode
    from components.validate.component import validate
    from components.version.component import version

    @dsl.pipeline(
        name=PIPELINE_NAME, description="Mine, version, validate, train, evaluate, export and promote."
    )
    def video_alchemist(
        data: str,
        captions: str = "",
        num_shards: int = 2,
        miner: dict = {},  # noqa: B006 - KFP parameters need literal defaults; MinerConfig fields by name
        preset: str = "tiny",
        base_model: str = "",
        trainable: str = "full",
        lora_rank: int = 0,
        model_overrides: dict = {},  # noqa: B006 - config fields by section, e.g. {"video": {"frames": 33}}
        text_encoder: str = "",
        image_encoder: str = "",
        vae: str = "",
        deepspeed_config: str = "",
        stage1_steps: int = 60,
        stage2_steps: int = 60,
        learning_rate: float = 1e-4,
        batch_size: int = 2,
        warmup_steps: int = 100,
        eval_modes: str = "",
        eval_split: str = "test",
        eval_limit: int = 0,
        eval_steps: int = 20,
        evaluators: dict = {},  # noqa: B006 - EvaluatorConfig fields: weight locations of CLIP, DINO, ...
        ground_truth: str = "",
        gate_policy: str = "demo",
        registered_model: str = "video_alchemist",
        tracking_uri: str = "",
        dvc_repo: str = "/tmp/alchemist-dvc",
        dvc_remote: str = "",
        serving_repository: str = "",
    ):
        outcome = record_outcome(
            tracking_uri=tracking_uri,
            experiment=EXPERIMENTS["pipeline"],
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        ).set_caching_options(False)
        if cluster is not None:
            use_platform(outcome, cluster)
        with dsl.ExitHandler(outcome, name="video-alchemist-run"):
            plan = plan_shards(data=data, captions=captions, num_shards=num_shards).set_caching_options(False)
            _step(plan, "mine", cluster, network=True)
            with dsl.ParallelFor(plan.output, name="mine-shards") as shard:
                part = mine_shard(data=data, shard=shard, miner=miner)
                _step(part, "mine", cluster, network=True)
            merged = _step(
                merge_shards(parts=dsl.Collected(part.outputs["dataset"]), miner=miner), "mine", cluster
            )

            versioned = version(dataset=merged.outputs["dataset"], dvc_repo=dvc_repo, dvc_remote=dvc_remote)
            _step(versioned, "version", cluster, network=True)

            checked = _step(validate(dataset=versioned.outputs["versioned"]), "validate", cluster)

            common = dict(
                dataset=versioned.outputs["versioned"],
                preset=preset,
                deepspeed_config=deepspeed_config,
                tracking_uri=tracking_uri,
                experiment=EXPERIMENTS["train"],
                learning_rate=learning_rate,
                batch_size=batch_size,
                warmup_steps=warmup_steps,
            )
            if cluster is not None and cluster.train_nodes > 1:
                trainer = partial(
                    train_multinode,
                    nodes=cluster.train_nodes,
                    gpus_per_node=cluster.gpu_pool.gpus,
                    image=cluster.image,
                    namespace=cluster.namespace,
                    shared_dir=SHARED_MOUNT,
                    **common,
                )
            else:
                trainer = partial(
                    train,
                    text_encoder=text_encoder,
                    image_encoder=image_encoder,
                    vae=vae,
                    base_model=base_model,
                    trainable=trainable,
                    lora_rank=lora_rank,
                    model_overrides=model_overrides,
                    **common,
                )
            # With base_model (an imported Wan2.1), stage 1 is a short text-only adaptation from it.
            stage1 = _train_step(trainer(stage=1, steps=stage1_steps).after(checked), cluster)
            stage2 = _train_step(trainer(stage=2, steps=stage2_steps, init=stage1.outputs["model"]), cluster)

            scored = evaluate(
                model=stage2.outputs["model"],
                dataset=versioned.outputs["versioned"],
                modes=eval_modes,
                split=eval_split,
                limit=eval_limit,
                steps=eval_steps,
                evaluators=evaluators,
                ground_truth=ground_truth,
                tracking_uri=tracking_uri,
            )
            _step(scored, "evaluate", cluster, gpu=True, network=True)

            exported = _step(export(model=stage2.outputs["model"]), "export", cluster)

            decided = promote(
                candidate_run=scored.outputs["Output"],
                repository=exported.outputs["repository"],
                policy=gate_policy,
                registered_model=registered_model,
                serving_repository=serving_repository,
                tracking_uri=tracking_uri,
            )
            _step(decided, "promote", cluster, network=True)

            summary = summarize(
                dataset=versioned.outputs["versioned"],
                model=stage2.outputs["model"],
                validation=checked.outputs["details"],
                evaluation=scored.outputs["details"],
                gate=decided.outputs["summary"],
                candidate_run=scored.outputs["Output"],
                decision=decided.outputs["Output"],
            ).set_caching_options(False)
            if cluster is not None:
                use_platform(summary, cluster)

    return video_alchemist
