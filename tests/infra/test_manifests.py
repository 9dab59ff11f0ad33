"""Offline checks of the Kubernetes manifests: they build, fit the schema, and refer to each other."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
K8S = INFRA / "k8s"
KUBECTL = shutil.which("kubectl")

# kind -> kubernetes client model used to check field names and types
MODELS = {
    "Namespace": "V1Namespace",
    "ServiceAccount": "V1ServiceAccount",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "ConfigMap": "V1ConfigMap",
    "Secret": "V1Secret",
    "Service": "V1Service",
    "Deployment": "V1Deployment",
    "StatefulSet": "V1StatefulSet",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
}


def schema_roundtrip(doc: dict, model: str) -> dict:
    """Load a manifest into the typed client model and back: unknown or misspelt fields disappear."""
    from kubernetes.client import ApiClient

    client = ApiClient()
    obj = client._ApiClient__deserialize(doc, model)
    return client.sanitize_for_serialization(obj)


def assert_same(original, roundtrip, where: str) -> None:
    if isinstance(original, dict):
        assert isinstance(roundtrip, dict), f"{where}: expected a mapping"
        missing = set(original) - set(roundtrip)
        assert not missing, f"{where}: fields unknown to the Kubernetes schema: {sorted(missing)}"
        for key, value in original.items():
            assert_same(value, roundtrip[key], f"{where}.{key}")
    elif isinstance(original, list):
        assert len(original) == len(roundtrip), f"{where}: list length changed"
        for i, (a, b) in enumerate(zip(original, roundtrip, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert str(original) == str(roundtrip), f"{where}: {original!r} became {roundtrip!r}"


@pytest.fixture(scope="module")
def built() -> list[dict]:
    if KUBECTL is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    out = subprocess.run(
        [KUBECTL, "kustomize", str(K8S / "base")], check=True, capture_output=True, text=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def test_every_yaml_file_parses():
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert docs, f"{path} is empty"
        for doc in docs:
            assert "apiVersion" in doc and "kind" in doc, f"{path}: a document without apiVersion/kind"


def test_build_holds_every_service_of_the_platform(built):
    names = {(d["kind"], d["metadata"]["name"]) for d in built}
    for expected in [
        ("Deployment", "mlflow"),
        ("StatefulSet", "mlflow-db"),
        ("Service", "mlflow"),
        ("Deployment", "triton"),
        ("Service", "triton"),
        ("ServiceAccount", "alchemist-pipeline"),
        ("Secret", "alchemist-s3"),
        ("Secret", "alchemist-mlflow"),
        ("ConfigMap", "alchemist-config"),
    ]:
        assert expected in names, f"{expected} missing from the kustomize build"
    assert all(d["metadata"].get("namespace") == "alchemist" for d in built if d["kind"] != "Namespace")


def test_built_resources_match_the_kubernetes_schema(built):
    for doc in built:
        model = MODELS[doc["kind"]]
        assert_same(doc, schema_roundtrip(doc, model), f"{doc['kind']}/{doc['metadata']['name']}")


def test_a_misspelt_field_is_caught():
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"selectr": {"a": "b"}}}
    with pytest.raises(AssertionError, match="selectr"):
        assert_same(doc, schema_roundtrip(doc, "V1Service"), "Service/x")


def workloads(built) -> list[dict]:
    return [d for d in built if d["kind"] in ("Deployment", "StatefulSet")]


def test_references_between_resources_resolve(built):
    secrets = {d["metadata"]["name"]: set(d.get("data", {})) for d in built if d["kind"] == "Secret"}
    configs = {d["metadata"]["name"]: set(d.get("data", {})) for d in built if d["kind"] == "ConfigMap"}
    for workload in workloads(built):
        name, spec = workload["metadata"]["name"], workload["spec"]["template"]["spec"]
        volumes = {v["name"] for v in spec.get("volumes", [])}
        volumes |= {c["metadata"]["name"] for c in workload["spec"].get("volumeClaimTemplates", [])}
        for container in spec.get("initContainers", []) + spec["containers"]:
            # every image is pinned to a tag: the kustomize `images:` mapping replaced the bare local names
            assert re.fullmatch(r"\S+:[\w.-]*\d[\w.-]*", container["image"]), (
                f"{name}: image {container['image']}"
            )
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets, f"{name}: unknown secret"
            for env in container.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in secrets[ref["secretKeyRef"]["name"]], (
                        f"{name}: {env}"
                    )
                if "configMapKeyRef" in ref:
                    assert ref["configMapKeyRef"]["key"] in configs[ref["configMapKeyRef"]["name"]], (
                        f"{name}: {env}"
                    )
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes, f"{name}: volume {mount['name']} is not declared"


def test_services_select_pods_and_named_ports(built):
    pods = [
        (w["spec"]["template"]["metadata"]["labels"], w["spec"]["template"]["spec"]["containers"])
        for w in workloads(built)
    ]
    for svc in (d for d in built if d["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        matches = [
            containers for labels, containers in pods if all(labels.get(k) == v for k, v in selector.items())
        ]
        assert len(matches) == 1, f"Service {svc['metadata']['name']} selects {len(matches)} workloads"
        port_names = {p.get("name") for c in matches[0] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, (
                f"Service {svc['metadata']['name']}: port {port['targetPort']}"
            )


def test_triton_serves_on_a_gpu_with_shared_memory(built):
    triton = next(d for d in built if d["kind"] == "Deployment" and d["metadata"]["name"] == "triton")
    spec = triton["spec"]["template"]["spec"]
    server = spec["containers"][0]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert {"name": "dshm", "mountPath": "/dev/shm"} in server["volumeMounts"]
    assert any(v["name"] == "dshm" and v["emptyDir"]["medium"] == "Memory" for v in spec["volumes"])


def test_pytorchjob_template_is_a_valid_multinode_job():
    job = yaml.safe_load((K8S / "training" / "pytorchjob.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert set(replicas) == {"Master", "Worker"}
    for role, replica in replicas.items():
        template = replica["template"]
        assert_same(template, schema_roundtrip(template, "V1PodTemplateSpec"), f"PyTorchJob.{role}")
        container = template["spec"]["containers"][0]
        assert container["name"] == "pytorch", "the Training Operator only wires a container named pytorch"
        assert (
            container["resources"]["limits"]["nvidia.com/gpu"]
            == container["resources"]["requests"]["nvidia.com/gpu"]
        )
        assert any(m["mountPath"] == "/dev/shm" for m in container["volumeMounts"])


def lock_pins() -> dict[str, str]:
    text = (INFRA.parent / "requirements.lock").read_text()
    return {m[0].lower(): m[1] for m in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;]+)", text, re.M)}


def test_dockerfile_pins_match_the_lock():
    dockerfile = (INFRA / "Dockerfile").read_text()
    lock = lock_pins()
    assert re.search(r"^FROM \$\{CUDA_IMAGE\} AS component", dockerfile, re.M)
    assert re.search(r"ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-cudnn-devel-", dockerfile)
    assert "requirements.lock" in dockerfile
    pins = dict(re.findall(r"\b([a-z0-9-]+)==([\d.]+)", dockerfile))
    for name in ("mlflow", "boto3"):
        assert pins[name] == lock[name], f"Dockerfile pins {name}=={pins[name]}, the lock {lock[name]}"
    torch = re.search(r"ARG TORCH_VERSION=([\d.]+)", dockerfile).group(1)
    makefile = (INFRA.parent / "Makefile").read_text()
    assert f"torch=={torch}" in makefile, "the image's torch must be the version the Makefile installs"
    for path in re.findall(r"^COPY (\S+) ", dockerfile, re.M):
        for part in path.split():
            assert (INFRA.parent / part).exists() or part == "README.md", f"COPY {part}: no such path"
