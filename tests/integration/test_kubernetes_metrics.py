"""The real Triton server serves what deploy/kubernetes relies on: the metric series in the
autoscaler rules and the dashboard, the probe paths, and the CPU config the staging overlay picks."""

from __future__ import annotations

import re
import urllib.request

from tests.support import k8s


def _scrape(port: int) -> set[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return set(re.findall(r"^# TYPE (\S+) ", text, re.M))


def _status(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status


def test_triton_exposes_every_metric_the_rules_and_dashboard_read(triton_server, make_client):
    # one scored pair, so that every per-model counter has moved at least once
    assert len(make_client("tiny-encoder").compute_score([["what is panda?", "a bear"]])) == 1
    exposed = _scrape(triton_server.metrics_port)
    assert "nv_inference_request_success" in exposed  # the scrape parsed
    used = {n for n in k8s.used_metric_names() if n.startswith("nv_")}
    assert {
        "nv_inference_queue_duration_us",
        "nv_inference_request_success",
        "nv_inference_count",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_exec_count",
        "nv_inference_request_failure",
        "nv_gpu_utilization",
    } <= used
    gpu = used & k8s.TRITON_GPU_METRICS
    missing = used - gpu - exposed
    assert not missing, f"Triton does not expose {sorted(missing)}"
    # the GPU series come only from GPU nodes: this CPU server must not be where they were checked
    assert not gpu & exposed


def test_triton_answers_the_probe_paths_of_the_deployment(triton_server):
    docs = k8s.render("gpu")
    c = k8s.container(docs, "triton")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert _status(f"http://{triton_server.http_url}{path}") == 200, probe


def test_every_served_model_has_the_config_the_cpu_overlay_selects(test_repository):
    from reranker_core.tensors import TEXT_MODEL_SUFFIX
    from reranker_server.embedded import EMBEDDED_CONFIG_NAME

    docs = k8s.render("cpu")
    env = {e["name"]: e.get("value") for e in k8s.container(docs, "triton")["env"]}
    assert env["MODEL_CONFIG_NAME"] == EMBEDDED_CONFIG_NAME
    models = [d for d in test_repository.root.iterdir() if (d / "config.pbtxt").exists()]
    assert models
    for model in models:
        if model.name.endswith(TEXT_MODEL_SUFFIX):
            # Text models run on CPU everywhere: one config.pbtxt, which Triton falls back to when a
            # model has no configs/<name>.pbtxt (the embedded server here loads them that way).
            assert not (model / "configs").exists(), model.name
            continue
        assert (model / "configs" / f"{EMBEDDED_CONFIG_NAME}.pbtxt").is_file(), model.name
