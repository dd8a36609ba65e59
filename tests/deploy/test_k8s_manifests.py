"""deploy/k8s/: parsed with PyYAML and held to the repository (configs, ports, served model names)."""
from __future__ import annotations

import glob
import os
import re

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from recsys import names as N

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(ROOT, "deploy", "k8s")
STOCK_IMAGE = re.compile(r"^tensorflow/serving:(\d+\.\d+\.\d+)$")


def documents() -> list[dict]:
    docs = []
    for path in sorted(glob.glob(os.path.join(K8S, "*.yaml"))):
        with open(path, encoding="utf-8") as f:
            docs += [dict(d, _file=os.path.basename(path)) for d in yaml.safe_load_all(f) if d]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in documents() if d["kind"] == kind}


def model_config(text: str) -> list[model_server_config_pb2.ModelConfig]:
    return list(text_format.Parse(text, model_server_config_pb2.ModelServerConfig()).model_config_list.config)


def served(deployment: dict) -> tuple[dict, str, list]:
    """(container, config file key in the ConfigMap, that config's models) of a TF Serving Deployment."""
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    flags = dict(a[2:].split("=", 1) for a in container["args"])
    config_path = flags["model_config_file"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    (volume,) = [n for n, path in mounts.items() if os.path.dirname(config_path) == path]
    config_map = by_kind("ConfigMap")[volumes[volume]["configMap"]["name"]]
    key = os.path.basename(config_path)
    return container, key, model_config(config_map["data"][key])


def test_every_manifest_is_a_named_kubernetes_object_listed_in_the_kustomization():
    docs = documents()
    assert {d["kind"] for d in docs} == {"Kustomization", "PersistentVolumeClaim", "ConfigMap", "Deployment",
                                         "Service", "HorizontalPodAutoscaler"}
    (kustomization,) = [d for d in docs if d["kind"] == "Kustomization"]
    files = {os.path.basename(p) for p in glob.glob(os.path.join(K8S, "*.yaml"))} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    for d in docs:
        if d["kind"] != "Kustomization":
            assert d["apiVersion"] and d["metadata"]["name"], d["_file"]


def test_configmap_carries_the_repository_model_server_configs_verbatim():
    (config_map,) = by_kind("ConfigMap").values()
    for key in ("models.config", "models.bruteforce.config"):
        with open(os.path.join(ROOT, "serving", key), encoding="utf-8") as f:
            assert config_map["data"][key] == f.read(), f"run python deploy/k8s/sync_configmap.py ({key} changed)"


def test_the_scann_deployment_serves_every_model_and_the_stock_one_only_the_twins():
    deployments = by_kind("Deployment")
    assert set(deployments) == {"tf-serving-scann", "tf-serving-bruteforce"}
    _, key, models = served(deployments["tf-serving-scann"])
    assert key == "models.config" and [m.name for m in models] == list(N.SERVED_MODELS)
    container, key, models = served(deployments["tf-serving-bruteforce"])
    assert key == "models.bruteforce.config"
    names = [m.name for m in models]
    assert set(names) <= set(N.SERVED_MODELS) and not set(names) & set(N.BRUTE_FORCE_TWINS)
    assert set(N.BRUTE_FORCE_TWINS.values()) <= set(names)
    # the stock image is the TF Serving release the client's protos come from (tensorflow-serving-api)
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        api = re.search(r"^tensorflow-serving-api==(\S+)$", f.read(), re.M).group(1)
    assert STOCK_IMAGE.match(container["image"]).group(1) == api
    assert not STOCK_IMAGE.match(served(deployments["tf-serving-scann"])[0]["image"])  # a ScaNN-linked build


@pytest.mark.parametrize("name", ["tf-serving-scann", "tf-serving-bruteforce"])
def test_ports_probes_and_model_paths(name):
    deployment = by_kind("Deployment")[name]
    container, _, models = served(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"grpc": 8500, "http": 8501}
    flags = dict(a[2:].split("=", 1) for a in container["args"])
    assert (int(flags["port"]), int(flags["rest_api_port"])) == (8500, 8501)
    names = [m.name for m in models]
    for probe in ("readinessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert ports[get["port"]] == 8501
        model = re.fullmatch(r"/v1/models/(\w+)", get["path"]).group(1)
        assert model in N.SERVED_MODELS and model in names
    # every base path lies under the read-only models volume, which is the pushed-models claim
    (models_mount,) = [m for m in container["volumeMounts"] if m["name"] == "models"]
    assert models_mount["readOnly"] is True
    assert all(m.base_path == f"{models_mount['mountPath']}/{m.name}" for m in models)
    (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "models"]
    assert volume["persistentVolumeClaim"]["claimName"] in by_kind("PersistentVolumeClaim")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation is relative to it


@pytest.mark.parametrize("name", ["tf-serving-scann", "tf-serving-bruteforce"])
def test_service_and_autoscaler_point_at_their_deployment(name):
    deployment = by_kind("Deployment")[name]
    service = by_kind("Service")[name]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert {p["port"]: p["targetPort"] for p in service["spec"]["ports"]} == {8500: "grpc", 8501: "http"}
    hpa = by_kind("HorizontalPodAutoscaler")[name]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
