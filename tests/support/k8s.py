"""Helpers for the Kubernetes manifest tests: rendering the overlays, finding documents, the
metric names that the autoscaler rules and the dashboard use, and the rerank API's contract."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "kubernetes"
OVERLAYS = ("gpu", "cpu")
DEPLOY_VENV = REPO / ".venv-deploy"
KUBERNETES_VERSION = "1.32.0"  # the oldest release the manifests are validated against
CUSTOM_RESOURCES = {("monitoring.coreos.com/v1", "ServiceMonitor")}


# The rerank API's contract, read from the package itself (api/reranker_api) and its image.
def _api_contract() -> dict[str, Any]:
    from reranker_api.metrics import Metrics
    from reranker_api.observe import ROUTES
    from reranker_api.settings import KEYS_FILE_ENV, Settings

    metrics = set()
    for family in Metrics().registry.collect():
        metrics.add(family.name + "_total" if family.type == "counter" else family.name)
    dockerfile = (REPO / "docker" / "api.Dockerfile").read_text()
    entry = json.loads(re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M).group(1))
    return {
        "port": Settings().port,
        "keys_env": KEYS_FILE_ENV,
        "metrics": metrics,
        "routes": set(ROUTES),
        "entrypoint": entry,
    }


API = _api_contract()
API_PORT: int = API["port"]
API_KEYS_FILE_ENV: str = API["keys_env"]
API_METRICS: set[str] = API["metrics"]
API_COMMAND: list[str] = API["entrypoint"][:3]  # python -m reranker_api
# Which route serves which probe is the API's documented meaning: ready = Triton and model ready,
# live = the process answers. Both must be routes of the package.
API_READY_PATH = "/health"
API_LIVE_PATH = "/v1/health/live"
API_METRICS_PATH = "/metrics"
assert {API_READY_PATH, API_LIVE_PATH, API_METRICS_PATH} <= API["routes"], API["routes"]

# Triton's GPU metrics (Triton's metrics documentation, "GPU Metrics"): the embedded CPU server in
# the tests cannot expose these, so the names used are checked against this list instead.
TRITON_GPU_METRICS = {
    "nv_gpu_utilization",
    "nv_gpu_memory_total_bytes",
    "nv_gpu_memory_used_bytes",
    "nv_gpu_power_usage",
    "nv_gpu_power_limit",
    "nv_energy_consumption",
}
# kube-state-metrics series the dashboard's replica panel reads (not produced by this project).
KUBE_STATE_METRICS = {
    "kube_deployment_status_replicas_available",
    "kube_horizontalpodautoscaler_status_desired_replicas",
}


def _load(name: str, path: Path):
    """A script under deploy/kubernetes as a module (it is not a package)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


renderer = _load("k8s_render", K8S / "render.py")
capacity = _load("k8s_capacity", K8S / "capacity.py")


def render(overlay: str) -> list[dict[str, Any]]:
    return renderer.render(K8S / "overlays" / overlay)


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} documents"
    return matches[0]


def container(docs: list[dict], deployment: str, name: str | None = None) -> dict:
    spec = find(docs, "Deployment", deployment)["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] if c["name"] == (name or deployment))


def pod_containers(doc: dict) -> Iterator[dict]:
    spec = doc.get("spec", {})
    if "template" in spec:
        pod = spec["template"]["spec"]
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])


def deploy_tool(name: str) -> str:
    """A tool from .venv-deploy (make deploy-venv); missing: skipped locally, a failure in CI."""
    path = DEPLOY_VENV / "bin" / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not installed: run `make deploy-venv` (requirements/deploy.txt)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# ---- metric names in PromQL ---------------------------------------------------------------

_METRIC = re.compile(r"\b((?:nv|reranker_api|kube)_[a-z0-9_]+)")
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (histogram series folded onto their metric)."""
    names = set()
    for name in _METRIC.findall(re.sub(r'"[^"]*"', '""', expr)):
        base = _HISTOGRAM_SUFFIX.sub("", name)
        names.add(base if base in API_METRICS else name)
    return names


def adapter_rules() -> list[dict]:
    return yaml.safe_load((K8S / "prometheus-adapter" / "values.yaml").read_text())["rules"]["custom"]


def dashboard() -> dict:
    return json.loads((K8S / "base" / "monitoring" / "reranker-dashboard.json").read_text())


def dashboard_exprs() -> list[str]:
    exprs = [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard()["templating"]["list"] if "definition" in v]
    return exprs


def used_metric_names() -> set[str]:
    """Every metric the adapter rules and the dashboard read."""
    names: set[str] = set()
    for rule in adapter_rules():
        names |= metric_names(rule["seriesQuery"]) | metric_names(rule["metricsQuery"])
    for expr in dashboard_exprs():
        names |= metric_names(expr)
    return names
