"""The real Triton server serves what deploy/kubernetes relies on: the metric series in the
autoscaler rules and the dashboard, the probe paths, and the CPU config the staging overlay picks."""

from __future__ import annotations

import re
import urllib.request

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.__main__ import main as export_main
from export.tiny import build_tiny
from reranker_core.families import ENCODER, GEMMA
from reranker_core.tensors import TEXT_MODEL_SUFFIX
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


def _export_job_args(docs: list[dict]) -> list[str]:
    [export] = k8s.find(docs, "Job", "export-model")["spec"]["template"]["spec"]["containers"]
    assert export["command"][-1] == "export"
    return list(export["args"])


def _with(args: list[str], option: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(option) + 1] = value
    return out


def test_every_model_the_cpu_overlay_exports_has_the_config_it_selects(tmp_path):
    """The overlay's export Job (its own arguments, a tiny local checkpoint for the hub id) and an
    LLM reranker exported beside it: each token model carries configs/<MODEL_CONFIG_NAME>.pbtxt on
    CPU, each text model only its CPU config.pbtxt, which Triton falls back to."""
    docs = k8s.render("cpu")
    env = {e["name"]: e.get("value") for e in k8s.container(docs, "triton")["env"]}
    config_name = env["MODEL_CONFIG_NAME"]
    assert config_name == "openvino"
    repository = tmp_path / "models"
    job_args = _with(_export_job_args(docs), "--repository", str(repository))
    assert export_main(_with(job_args, "--model", str(build_tiny(ENCODER, tmp_path / "xlmr")))) == 0
    gemma = ["--model", str(build_tiny(GEMMA, tmp_path / "gemma")), "--name", "gemma"]
    assert export_main([*gemma, "--repository", str(repository)]) == 0
    models = sorted(d for d in repository.iterdir() if (d / "config.pbtxt").exists())
    assert len(models) == 4, models  # two token models, two text models
    for model in models:
        if model.name.endswith(TEXT_MODEL_SUFFIX):
            assert not (model / "configs").exists(), model.name
            path = model / "config.pbtxt"
        else:
            path = model / "configs" / f"{config_name}.pbtxt"
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        kinds = {g.kind for g in config.instance_group}
        assert kinds == {model_config_pb2.ModelInstanceGroup.KIND_CPU}, (path, kinds)
