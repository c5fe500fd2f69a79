"""`make serve REPLICAS=3` (tools/serve.py --replicas 3): three real Triton replicas on offset
ports and the rerank API in front of all of them. Every replica serves part of the API's traffic
with the single-server scores; SIGTERM stops the API and drains the replicas, the launcher exits 0
and no process of it remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from reranker_server.process_tree import cmdline, is_alive, process_tree
from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 300  # an upper bound for slow shared machines, not a timing assertion
REPLICAS = 3
MODEL = "tiny-encoder"


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("serve_replicas_repo")
    build_repository(root, tmp_path_factory.mktemp("serve_replicas_ckpt"), ENCODER_MODELS[:1])
    return root


def _base_ports() -> tuple[int, int, int]:
    """HTTP, gRPC and metrics ports of replica 0 such that every replica's ports are free now."""
    for _ in range(100):
        http, grpc, metrics = free_ports(3)
        wanted = {p + 3 * i for p in (http, grpc, metrics) for i in range(REPLICAS)}
        if len(wanted) == 3 * REPLICAS and all(_free(p) for p in wanted):
            return http, grpc, metrics
    pytest.fail("no free port layout found")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _successes(metrics_port: int) -> float:
    """nv_inference_request_success of the text model on one replica."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("nv_inference_request_success{") and f'model="{MODEL}-text"' in line
    )


def test_make_serve_replicas_puts_the_api_in_front_of_every_replica(repository):
    http, grpc, metrics = _base_ports()
    (api_port,) = free_ports(1)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tools.serve", "--model-repository", str(repository)]
        + ["--replicas", str(REPLICAS), "--http-port", str(http), "--grpc-port", str(grpc)]
        + ["--metrics-port", str(metrics), "--api-port", str(api_port), "--drain-timeout-s", "30"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    base = f"http://127.0.0.1:{api_port}"
    body = {"query": "what is panda?", "texts": ["hi", "a panda bear", "bamboo forest"], "raw_scores": True}
    tree: list[int] = []
    try:
        deadline = time.monotonic() + WAIT_S
        while True:  # every replica ready, then the API
            try:
                ready = all(
                    urllib.request.urlopen(
                        f"http://127.0.0.1:{http + 3 * i}/v2/health/ready", timeout=2
                    ).status
                    == 200
                    for i in range(REPLICAS)
                ) and (httpx.get(base + "/health", timeout=5).status_code == 200)
            except (OSError, httpx.HTTPError):
                ready = False
            if ready:
                break
            assert launcher.poll() is None, "make serve exited"
            assert time.monotonic() < deadline, "the replicas or the API never became ready"
            time.sleep(0.5)
        tree = process_tree(launcher.pid)
        stubs = [p for p in tree if "triton_python_backend_stub" in cmdline(p)[0]]
        assert len(stubs) >= 2 * REPLICAS, tree  # each replica: the model and its text model
        before = [_successes(metrics + 3 * i) for i in range(REPLICAS)]
        answers = [httpx.post(base + "/rerank", json=body, timeout=60) for _ in range(30)]
        assert {a.status_code for a in answers} == {200}
        assert all(a.json() == answers[0].json() for a in answers)
        served = [_successes(metrics + 3 * i) - before[i] for i in range(REPLICAS)]
        assert all(n > 0 for n in served), f"requests per replica: {served}"
        launcher.send_signal(signal.SIGTERM)
        out = launcher.communicate(timeout=WAIT_S)[0].decode(errors="replace")
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in tree[1:]:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert launcher.returncode == 0, out[-3000:]
    assert not [p for p in tree if is_alive(p)], "a process of `make serve` remains"
