"""The DAG compiles for both places it runs, with the wiring, caching and cluster settings it promises."""

from __future__ import annotations

import pytest
import yaml

from components.image import COMPONENT_IMAGE
from components.train.pytorchjob import render_pytorchjob
from pipelines.cluster import ClusterOptions, GpuPool
from pipelines.pipeline import CODE_ENV, STEP_CODE, build_pipeline, code_version

NETWORK_STEPS = {"plan-shards", "mine-shard", "version", "train", "train-2", "evaluate", "promote"}
GPU_STEPS = {"train", "train-2", "evaluate"}


def compile_to(tmp_path, cluster: ClusterOptions | None) -> tuple[dict, dict]:
    from kfp import compiler

    out = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(build_pipeline(cluster=cluster), package_path=str(out))
    docs = list(yaml.safe_load_all(out.read_text()))
    return docs[0], (docs[1] if len(docs) > 1 else {})


@pytest.fixture(scope="module")
def local_spec(tmp_path_factory):
    return compile_to(tmp_path_factory.mktemp("local"), None)[0]


@pytest.fixture(scope="module")
def cluster_spec(tmp_path_factory):
    options = ClusterOptions(image="registry.test/alchemist:1", gpu_pool=GpuPool(gpus=4, shm_size="16Gi"))
    return compile_to(tmp_path_factory.mktemp("cluster"), options)


def steps(spec: dict) -> dict:
    """The tasks inside the exit handler, with the fanned-out mining task in place of its loop."""
    tasks = dict(spec["components"]["comp-exit-handler-1"]["dag"]["tasks"])
    loop = tasks.pop("for-loop-2")
    return {**tasks, **spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]}


def test_steps_follow_the_pipeline_order(local_spec):
    tasks = local_spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    after = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    assert after["merge-shards"] == {"for-loop-2"}
    assert tasks["for-loop-2"]["parameterIterator"]["items"]["inputParameter"].endswith("plan-shards-Output")
    assert after["version"] == {"merge-shards"}
    assert after["validate"] == {"version"}
    assert "validate" in after["train"], "training must wait for validation to pass"
    assert "train" in after["train-2"]
    assert "train-2" in after["evaluate"] and "train-2" in after["export"]
    assert {"evaluate", "export"} <= after["promote"]
    stage2 = tasks["train-2"]["inputs"]
    assert stage2["artifacts"]["init"]["taskOutputArtifact"] == {
        "outputArtifactKey": "model",
        "producerTask": "train",
    }


def test_exit_handler_records_every_outcome(local_spec):
    root = local_spec["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "record-outcome"}
    assert root["record-outcome"]["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"


def test_steps_are_cached_except_those_that_must_look_again(local_spec):
    tasks = steps(local_spec)
    uncached = {
        n
        for n, t in tasks.items()
        if "componentRef" in t and not t.get("cachingOptions", {}).get("enableCache")
    }
    assert uncached == {"plan-shards", "summarize"}
    executors = local_spec["deploymentSpec"]["executors"]
    for name, executor in executors.items():
        if name in ("exec-record-outcome", "exec-summarize"):
            continue
        env = {e["name"]: e["value"] for e in executor["container"].get("env", [])}
        assert len(env.get(CODE_ENV, "")) == 16, f"{name} has no code version in its cache key"


def test_code_version_tracks_each_steps_sources():
    versions = {step: code_version(step) for step in STEP_CODE}
    assert versions == {step: code_version(step) for step in STEP_CODE}, "must be deterministic"
    assert len(set(versions.values())) == len(versions), "steps with different code share a version"


def test_local_pipeline_has_no_cluster_settings(local_spec):
    for executor in local_spec["deploymentSpec"]["executors"].values():
        assert "resources" not in executor["container"]
    assert all("retryPolicy" not in t for t in steps(local_spec).values())


def test_cluster_pipeline_requests_gpus_secrets_and_retries(cluster_spec):
    spec, platform = cluster_spec
    tasks = steps(spec)
    executors = spec["deploymentSpec"]["executors"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for name, task in tasks.items():
        executor = task["componentRef"]["name"].replace("comp-", "exec-")
        container = executors[executor]["container"]
        assert container["image"] == "registry.test/alchemist:1"
        secrets = {s["secretName"] for s in k8s[executor]["secretAsEnv"]}
        assert secrets == {"alchemist-s3", "alchemist-mlflow"}
        if name in GPU_STEPS:
            assert container["resources"]["accelerator"]["resourceCount"] == "4"
            assert k8s[executor]["nodeSelector"]["labels"] == {
                "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"
            }
            assert k8s[executor]["tolerations"][0]["key"] == "nvidia.com/gpu"
            (shm,) = k8s[executor]["emptyDirMounts"]
            assert (shm["mountPath"], shm["medium"], shm["sizeLimit"]) == ("/dev/shm", "Memory", "16Gi")
        else:
            assert "resources" not in container
        assert ("retryPolicy" in task) == (name in NETWORK_STEPS), name
    assert spec["root"]["inputDefinitions"]["parameters"]["preset"]["defaultValue"] == "tiny"


def test_components_default_to_the_project_image(local_spec):
    images = {e["container"]["image"] for e in local_spec["deploymentSpec"]["executors"].values()}
    assert images == {COMPONENT_IMAGE}


def test_multinode_training_launches_pytorchjobs_from_the_shared_volume(tmp_path):
    spec, platform = compile_to(tmp_path, ClusterOptions(train_nodes=4))
    tasks = steps(spec)
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "train" not in tasks
    for name in ("train-multinode", "train-multinode-2"):
        params = tasks[name]["inputs"]["parameters"]
        assert params["nodes"]["runtimeValue"]["constant"] == 4
        assert params["gpus_per_node"]["runtimeValue"]["constant"] == 8
        executor = tasks[name]["componentRef"]["name"].replace("comp-", "exec-")
        assert "resources" not in spec["deploymentSpec"]["executors"][executor]["container"], (
            "the launcher needs no GPU"
        )
        (pvc,) = k8s[executor]["pvcMount"]
        assert (pvc["constant"], pvc["mountPath"]) == ("alchemist-shared", "/shared")
    assert "resources" in spec["deploymentSpec"]["executors"]["exec-evaluate"]["container"]


def test_pytorchjob_spreads_training_over_nodes():
    job = render_pytorchjob(
        "train-abc", "registry.test/alchemist:1", ["alchemist", "train", "--stage", "2"], 4, 8
    )
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert (specs["Master"]["replicas"], specs["Worker"]["replicas"]) == (1, 3)
    for role in ("Master", "Worker"):
        container = specs[role]["template"]["spec"]["containers"][0]
        assert container["image"] == "registry.test/alchemist:1"
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "8"
        assert "--nproc-per-node 8" in container["args"][0]
        assert container["args"][0].endswith('"$(command -v alchemist)" train --stage 2')
    assert job["metadata"]["name"] == "train-abc"
    with pytest.raises(ValueError, match="nodes=1"):
        render_pytorchjob("x", "img", [], 1, 8)
