"""Multi-node training as a Kubeflow Training Operator PyTorchJob, rendered and run from inside the train step."""

from __future__ import annotations

import copy
import shlex
import time
from pathlib import Path
from typing import Any

import yaml

PYTORCHJOB_TEMPLATE = Path(__file__).resolve().parents[2] / "infra" / "k8s" / "training" / "pytorchjob.yaml"


class ClusterError(RuntimeError):
    """The cluster refused the job or the job failed; the message says which and why."""


def render_pytorchjob(
    name: str,
    image: str,
    command: list[str],
    nodes: int,
    gpus_per_node: int,
    namespace: str = "alchemist",
    template: Path = PYTORCHJOB_TEMPLATE,
) -> dict[str, Any]:
    """The PyTorchJob template with this run's name, image, training command and size filled in.

    `command` is a console script and its arguments (e.g. `["alchemist", "train", "--stage", "2", ...]`);
    every node runs it under torchrun with `gpus_per_node` processes. The pods share the template's
    `shared` volume (a ReadWriteMany claim) for the dataset and the trained model.
    """
    if nodes < 2:
        raise ValueError(
            f"nodes={nodes}: a PyTorchJob is for multi-node training; run one node in the step itself"
        )
    if not command:
        raise ValueError("command is empty; expected a console script and its arguments")
    job = copy.deepcopy(yaml.safe_load(template.read_text()))
    job["metadata"].update(name=name, namespace=namespace)
    script, *args = command
    launcher = (
        f'exec torchrun --nnodes "${{WORLD_SIZE}}" --node-rank "${{RANK}}" --nproc-per-node {gpus_per_node} '
        f'--master-addr "${{MASTER_ADDR}}" --master-port "${{MASTER_PORT}}" "$(command -v {shlex.quote(script)})"'
    )
    specs = job["spec"]["pytorchReplicaSpecs"]
    for role, replicas in (("Master", 1), ("Worker", nodes - 1)):
        spec = specs[role]
        spec["replicas"] = replicas
        spec["template"] = copy.deepcopy(spec["template"])
        container = spec["template"]["spec"]["containers"][0]
        container["image"] = image
        container["args"] = [" ".join([launcher, *(shlex.quote(a) for a in args)])]
        for section in ("requests", "limits"):
            container["resources"][section]["nvidia.com/gpu"] = str(gpus_per_node)
    return job


def run_pytorchjob(job: dict[str, Any], timeout_s: float = 7 * 24 * 3600, poll_s: float = 30.0) -> str:
    """Create the PyTorchJob from inside a pipeline pod and wait until it succeeds.

    Raises ClusterError with the job's last condition when it fails or runs past `timeout_s`.
    """
    from kubernetes import client, config

    config.load_incluster_config()  # the pipeline service account (infra/k8s/pipeline/rbac.yaml)
    api = client.CustomObjectsApi()
    group, version = job["apiVersion"].split("/")
    namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
    api.create_namespaced_custom_object(group, version, namespace, "pytorchjobs", job)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = api.get_namespaced_custom_object(group, version, namespace, "pytorchjobs", name).get(
            "status", {}
        )
        conditions = {c["type"]: c for c in status.get("conditions", []) if c.get("status") == "True"}
        if "Succeeded" in conditions:
            return name
        if "Failed" in conditions:
            reason = conditions["Failed"].get("message") or conditions["Failed"].get("reason", "unknown")
            raise ClusterError(f"PyTorchJob {namespace}/{name} failed: {reason}")
        time.sleep(poll_s)
    raise ClusterError(f"PyTorchJob {namespace}/{name} did not finish within {timeout_s:.0f} s")
