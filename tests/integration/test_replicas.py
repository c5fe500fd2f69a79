"""Two real embedded Triton replicas on one repository (reranker_server.replicas.ReplicaSet):
both serve the same scores; a drained replica lets every in-flight request finish while it is
not ready and refuses new ones (the other replica serves them); a killed replica leaves no
process behind, Python-backend stubs included; restart brings a replica back on its ports."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from reranker_client import RerankerClient
from reranker_server.process_tree import cmdline, is_alive, process_tree
from reranker_server.replicas import ReplicaSet
from tests.support.pairs import MULTILINGUAL_PAIRS
from tests.support.slow_model import SLOW_MODEL, add_slow_model, slow_input, started_requests
from tests.support.waiting import wait_until

WAIT_S = 300  # an upper bound for slow shared machines, not a timing assertion
HOLD_MS = 4000  # how long each slow request stays in flight


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("replica_repo")
    build_repository(root, tmp_path_factory.mktemp("replica_ckpt"), ENCODER_MODELS[:1])
    add_slow_model(root)
    return root


@pytest.fixture(scope="module")
def replicas(repository, tmp_path_factory):
    """Two running replicas; every test leaves both running."""
    replica_set = ReplicaSet(
        repository,
        2,
        log_dir=tmp_path_factory.mktemp("replica_logs"),
        drain_timeout_s=20,
        environment={"OMP_NUM_THREADS": "1"},
    )
    with replica_set:
        yield replica_set


def _scores(url: str) -> list[float]:
    client = RerankerClient(url, "tiny-encoder", "grpc")
    try:
        return list(client.compute_score(MULTILINGUAL_PAIRS))
    finally:
        client.close()


def _hold(url: str, results: list, hold_ms: int = HOLD_MS) -> None:
    client = grpcclient.InferenceServerClient(url)
    try:
        answer = client.infer(SLOW_MODEL, [slow_input(hold_ms)], client_timeout=WAIT_S)
        results.append(int(answer.as_numpy("held_ms")[0]))
    except InferenceServerException as exc:
        results.append(exc)
    finally:
        client.close()


def _replica_processes(replicas: ReplicaSet, i: int) -> list[int]:
    """tritonserver of replica i and its Python-backend stubs (checked to be there)."""
    tree = process_tree(replicas.pid(i))
    stubs = [p for p in tree if any("triton_python_backend_stub" in a for a in cmdline(p)[:1])]
    assert stubs, f"replica {i} has no Python-backend stub in its process tree {tree}"
    return tree


def test_replicas_serve_the_same_scores(replicas):
    first, second = (_scores(url) for url in replicas.grpc_urls)
    assert len(first) == len(MULTILINGUAL_PAIRS)
    assert first == second


def test_drain_finishes_in_flight_requests_refuses_new_ones_and_leaves_nothing(replicas, repository):
    before = started_requests(repository)
    processes = _replica_processes(replicas, 0)
    results: list = []
    threads = [threading.Thread(target=_hold, args=(replicas.grpc_urls[0], results)) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: started_requests(repository) >= before + 3, "3 slow requests executing")

    drained: list = []
    drainer = threading.Thread(target=lambda: drained.append(replicas.drain(0)))
    drainer.start()
    wait_until(lambda: not replicas.is_ready(0), "replica 0 not ready")
    assert not results, "in-flight requests ended before readiness went false"
    with pytest.raises(InferenceServerException):
        grpcclient.InferenceServerClient(replicas.grpc_urls[0]).infer(SLOW_MODEL, [slow_input(1)])
    late: list = []
    _hold(replicas.grpc_urls[1], late, hold_ms=1)  # the other replica takes new work
    assert late == [1]

    for t in threads:
        t.join(WAIT_S)
    drainer.join(WAIT_S)
    assert results == [HOLD_MS] * 3, results
    assert drained == [0], "tritonserver did not exit cleanly after its in-flight requests"
    assert not [p for p in processes if is_alive(p)], "a process of the drained replica remains"

    replicas.start(0)
    assert _scores(replicas.grpc_urls[0]) == _scores(replicas.grpc_urls[1])


def test_kill_leaves_no_process_of_the_replica_and_restart_serves_again(replicas):
    processes = _replica_processes(replicas, 1)
    replicas.kill(1)
    assert not [p for p in processes if is_alive(p)], "a process of the killed replica remains"
    assert not replicas.is_ready(1)
    replicas.restart(1)
    assert replicas.is_ready(1)
    assert _scores(replicas.grpc_urls[1]) == _scores(replicas.grpc_urls[0])
