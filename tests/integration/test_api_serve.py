"""`make serve` (tools/serve.py) with the rerank HTTP API: Triton and the API come up together,
the API answers every wire shape from the repository's text model, and Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """One tiny encoder (and its text model): the server starts fast."""
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("serve_api_repo")
    build_repository(root, tmp_path_factory.mktemp("serve_api_ckpt"), ENCODER_MODELS[:1])
    return root


def test_make_serve_runs_the_api_next_to_triton_and_stops_both(repository):
    http, grpc, metrics, api = free_ports(4)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.serve",
            "--model-repository",
            str(repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            "--api-port",
            str(api),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{api}"
    try:
        deadline = time.monotonic() + 300  # a bound for slow shared machines, not a timing assertion
        while True:
            try:
                if httpx.get(base + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert launcher.poll() is None, "make serve exited"
            assert time.monotonic() < deadline, "the API never became ready"
            time.sleep(0.5)
        model = "tiny-encoder"
        tei = httpx.post(
            base + "/rerank",
            json={"query": "what is panda?", "texts": ["hi", "a panda bear"], "raw_scores": True},
            timeout=60,
        )
        nim = httpx.post(
            base + "/v1/ranking",
            json={
                "model": model,
                "query": {"text": "what is panda?"},
                "passages": [{"text": "hi"}, {"text": "a panda bear"}],
            },
            timeout=60,
        )
        assert tei.status_code == 200 and nim.status_code == 200
        assert {x["index"]: x["score"] for x in tei.json()} == pytest.approx(
            {x["index"]: x["logit"] for x in nim.json()["rankings"]}, abs=1e-6
        )
        assert [m["id"] for m in httpx.get(base + "/v1/models", timeout=10).json()["data"]] == [model]
    finally:
        launcher.send_signal(signal.SIGINT)
        code = launcher.wait(timeout=120)
    assert code == 0
    with pytest.raises(httpx.HTTPError):
        httpx.get(base + "/health", timeout=5)
