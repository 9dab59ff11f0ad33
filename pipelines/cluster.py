"""The cluster side of the pipeline: GPU scheduling, secrets, compiling to IR YAML and submitting.

Nothing here runs in the embedded default; `pipelines.pipeline.build_pipeline(cluster=ClusterOptions())`
applies these settings to the same DAG that `kfp.local` runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.image import COMPONENT_IMAGE

# Secret and config names created by infra/k8s/pipeline (kustomize keeps them stable, no hash suffix).
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL")
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@dataclass
class GpuPool:
    """Where GPU steps are scheduled: accelerator type and count, node pool label, taint and shared memory."""

    accelerator: str = "nvidia.com/gpu"
    gpus: int = 8
    node_selector: dict[str, str] = field(
        default_factory=lambda: {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    )
    toleration_key: str = "nvidia.com/gpu"
    shm_size: str = "64Gi"  # DataLoader workers and NCCL exchange tensors through /dev/shm
    cpu_limit: str = "32"
    memory_limit: str = "512Gi"


@dataclass
class ClusterOptions:
    """Everything the compiled pipeline needs to know about the cluster it runs on."""

    image: str = COMPONENT_IMAGE
    gpu_pool: GpuPool = field(default_factory=GpuPool)
    s3_secret: str = "alchemist-s3"
    mlflow_secret: str = "alchemist-mlflow"
    train_nodes: int = 1  # >1: training runs as a PyTorchJob over this many nodes
    shared_volume: str = "alchemist-shared"  # ReadWriteMany claim shared with multi-node training jobs
    namespace: str = "alchemist"
    service_account: str = "alchemist-pipeline"

    def __post_init__(self) -> None:
        if self.train_nodes < 1:
            raise ValueError(f"train_nodes={self.train_nodes} must be >= 1")
        if self.gpu_pool.gpus < 1:
            raise ValueError(f"gpu_pool.gpus={self.gpu_pool.gpus} must be >= 1")


def use_platform(task: Any, options: ClusterOptions) -> Any:
    """Every step: the project image, and the S3 and MLflow credentials as environment variables."""
    from kfp import kubernetes

    task.set_container_image(options.image)
    kubernetes.use_secret_as_env(task, options.s3_secret, {k: k for k in S3_SECRET_KEYS})
    kubernetes.use_secret_as_env(
        task, options.mlflow_secret, {k: k for k in MLFLOW_SECRET_KEYS}, optional=True
    )
    return task


def use_gpus(task: Any, pool: GpuPool) -> Any:
    """A training or evaluation step: GPUs from the pool, its node selector and toleration, a large /dev/shm."""
    from kfp import kubernetes

    task.set_accelerator_type(pool.accelerator).set_accelerator_limit(pool.gpus)
    task.set_cpu_limit(pool.cpu_limit).set_memory_limit(pool.memory_limit)
    for key, value in pool.node_selector.items():
        kubernetes.add_node_selector(task, label_key=key, label_value=value)
    kubernetes.add_toleration(task, key=pool.toleration_key, operator="Exists", effect="NoSchedule")
    kubernetes.empty_dir_mount(
        task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=pool.shm_size
    )
    return task


def compile_pipeline(out: Path, options: ClusterOptions | None = None) -> Path:
    """Write the pipeline as KFP IR YAML for the cluster."""
    from kfp import compiler

    from pipelines.pipeline import build_pipeline

    out.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(cluster=options or ClusterOptions()), package_path=str(out))
    return out


def submit(
    package: Path,
    host: str,
    experiment: str,
    arguments: dict[str, Any] | None = None,
    options: ClusterOptions | None = None,
    run_name: str | None = None,
) -> str:
    """Submit a compiled pipeline with kfp.Client; returns the run id."""
    import kfp

    options = options or ClusterOptions()
    client = kfp.Client(host=host, namespace=options.namespace)
    result = client.create_run_from_pipeline_package(
        str(package),
        arguments=arguments or {},
        run_name=run_name,
        experiment_name=experiment,
        namespace=options.namespace,
        service_account=options.service_account,
        enable_caching=True,
    )
    return result.run_id
