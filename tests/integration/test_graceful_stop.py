"""Graceful stops of real processes: SIGTERM to the rerank API (`python -m reranker_api`) lets its
requests in flight finish while it refuses new connections; SIGTERM to `make serve --replicas 2`
(tools/serve.py) drains both replicas: each stops being ready, its request in flight finishes,
the launcher exits 0 and no process of it remains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from reranker_server.embedded import EmbeddedTritonServer
from reranker_server.process_tree import cmdline, is_alive, process_tree
from tests.support.api_server import ApiProcess
from tests.support.ports import free_ports
from tests.support.slow_model import SLOW_MODEL, add_slow_model, slow_input, started_requests
from tests.support.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 300  # an upper bound for slow shared machines, not a timing assertion
HOLD_MS = 4000


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("graceful_repo")
    build_repository(root, tmp_path_factory.mktemp("graceful_ckpt"), ENCODER_MODELS[:1])
    add_slow_model(root)
    return root


def _in_flight(api_url: str) -> float:
    text = httpx.get(api_url + "/metrics", timeout=10).text
    line = next(x for x in text.splitlines() if x.startswith("reranker_api_in_flight_requests "))
    return float(line.split()[1])


def _refuses_connections(api_url: str) -> bool:
    try:
        httpx.get(api_url + "/v1/health/live", timeout=5)
    except httpx.ConnectError:
        return True
    return False


BODY = {"query": "what is panda?", "texts": ["hi", "a panda bear", "bamboo"], "raw_scores": True}


def test_api_sigterm_finishes_requests_in_flight(repository, tmp_path):
    http, grpc, metrics = free_ports(3)
    server = EmbeddedTritonServer(
        repository, http_port=http, grpc_port=grpc, metrics_port=metrics, log_file=tmp_path / "triton.log"
    )
    server.start(timeout=WAIT_S)
    api = ApiProcess(server.grpc_url, ["--graceful-timeout-s", str(WAIT_S)], log_file=tmp_path / "api.log")
    frozen = False
    try:
        api.start(timeout=WAIT_S)
        expected = httpx.post(api.url + "/rerank", json=BODY, timeout=WAIT_S).json()
        os.killpg(server.process.pid, signal.SIGSTOP)  # Triton frozen: requests stay in flight
        frozen = True
        answers: list = []

        def call() -> None:
            answers.append(httpx.post(api.url + "/rerank", json=BODY, timeout=WAIT_S))

        callers = [threading.Thread(target=call) for _ in range(4)]
        for t in callers:
            t.start()
        wait_until(lambda: _in_flight(api.url) == 4, "4 requests in flight in the API")
        api.process.send_signal(signal.SIGTERM)
        wait_until(lambda: _refuses_connections(api.url), "the API refusing new connections")
        assert api.process.poll() is None, "the API exited with requests in flight"
        os.killpg(server.process.pid, signal.SIGCONT)
        frozen = False
        for t in callers:
            t.join(WAIT_S)
        # uvicorn re-raises the signal once it has shut down: "terminated by SIGTERM", not a crash
        assert api.process.wait(WAIT_S) in (0, -signal.SIGTERM), api.log_tail()
    finally:
        if frozen:
            os.killpg(server.process.pid, signal.SIGCONT)
        api.stop()
        server.stop()
    assert [a.status_code for a in answers] == [200] * 4, [a.text[:200] for a in answers]
    assert all(a.json() == expected for a in answers)


def _ready(url: str) -> bool:
    client = grpcclient.InferenceServerClient(url)
    try:
        return client.is_server_ready()
    except InferenceServerException:
        return False
    finally:
        client.close()


def _hold(url: str, results: list) -> None:
    client = grpcclient.InferenceServerClient(url)
    try:
        answer = client.infer(SLOW_MODEL, [slow_input(HOLD_MS)], client_timeout=WAIT_S)
        results.append(int(answer.as_numpy("held_ms")[0]))
    except InferenceServerException as exc:
        results.append(exc)
    finally:
        client.close()


def test_make_serve_with_two_replicas_drains_both_on_sigterm(repository):
    http, grpc, metrics = 0, 0, 0
    while len({http, grpc, metrics, http + 3, grpc + 3, metrics + 3}) < 6:  # free_ports may interleave
        http, grpc, metrics = free_ports(3)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tools.serve", "--model-repository", str(repository), "--replicas", "2"]
        + ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
        + ["--api-port", "0", "--drain-timeout-s", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    urls = [f"127.0.0.1:{grpc}", f"127.0.0.1:{grpc + 3}"]
    results: list = []
    tree: list[int] = []
    try:
        wait_until(lambda: all(_ready(u) for u in urls), "both replicas ready")
        tree = process_tree(launcher.pid)
        assert sum("triton_python_backend_stub" in cmdline(p)[0] for p in tree) >= 2, tree
        before = started_requests(repository)
        holders = [threading.Thread(target=_hold, args=(u, results)) for u in urls]
        for t in holders:
            t.start()
        wait_until(lambda: started_requests(repository) >= before + 2, "a slow request on each replica")
        launcher.send_signal(signal.SIGTERM)
        wait_until(lambda: not any(_ready(u) for u in urls), "both replicas not ready")
        assert not results, "requests in flight ended before the replicas stopped being ready"
        for t in holders:
            t.join(WAIT_S)
        out = launcher.communicate(timeout=WAIT_S)[0].decode(errors="replace")
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in tree[1:]:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert results == [HOLD_MS, HOLD_MS], results
    assert launcher.returncode == 0, out[-3000:]
    assert not [p for p in tree if is_alive(p)], "a process of `make serve` remains"


def test_make_serve_keeps_serving_when_one_replica_is_drained(repository):
    """SIGTERM to one replica's launcher (a rolling restart by hand): it drains and exits, the
    other replica and `make serve` go on; the launcher's own SIGTERM then stops the rest."""
    http, grpc, metrics = 0, 0, 0
    while len({http, grpc, metrics, http + 3, grpc + 3, metrics + 3}) < 6:
        http, grpc, metrics = free_ports(3)
    launcher = subprocess.Popen(
        [sys.executable, "-m", "tools.serve", "--model-repository", str(repository), "--replicas", "2"]
        + ["--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]
        + ["--api-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
    )
    urls = [f"127.0.0.1:{grpc}", f"127.0.0.1:{grpc + 3}"]
    tree: list[int] = []
    try:
        wait_until(lambda: all(_ready(u) for u in urls), "both replicas ready")
        tree = process_tree(launcher.pid)
        first = next(
            p
            for p in tree
            if "reranker_server.embedded" in cmdline(p)
            and cmdline(p)[cmdline(p).index("--grpc-port") + 1] == str(grpc)
        )
        os.kill(first, signal.SIGTERM)
        wait_until(lambda: not is_alive(first), "replica 0's launcher exit")
        assert not _ready(urls[0]) and _ready(urls[1])
        assert launcher.poll() is None, "make serve stopped with a replica still serving"
        launcher.send_signal(signal.SIGTERM)
        out = launcher.communicate(timeout=WAIT_S)[0].decode(errors="replace")
    finally:
        if launcher.poll() is None:
            launcher.kill()
        for pid in tree[1:]:
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert launcher.returncode == 0, out[-3000:]
    assert "triton-0 exited with code 0; 1 replica(s) left" in out
    assert not [p for p in tree if is_alive(p)], "a process of `make serve` remains"
