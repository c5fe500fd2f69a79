"""Faults in the middle of load, each on its OWN embedded server (free ports), never the shared one.

What Triton 2.51 (the pytriton wheel's server) does when a Python-backend stub dies, found here:
it does NOT restart the stub. The model stays READY, every request to it fails after about a
second with INTERNAL "Stub process '<model>_0_0' is not healthy.", other models are unaffected, and
`load_model` on the unchanged model is a no-op. Recovery is `unload_model` + `load_model` (needs
--model-control-mode=explicit) or a server restart. While the model is unloaded requests get
NOT_FOUND "... has no available versions". The client maps the stub error and that window to
retryable errors, so callers ride through a recovery with RetryPolicy, and otherwise get ONE
ServerUnavailableError naming the cause. Every test runs against the sync and the asyncio client.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from reranker_client.errors import RequestTimeoutError, ServerUnavailableError
from reranker_client.retry import RetryPolicy
from tests.support.async_bridge import make_client
from tests.support.load.driver import LoadConfig, LoadReport, Target, pair_pool, reference_scores, run_load
from tests.support.load.procs import is_alive, stub_pids
from tests.support.load.servers import start_private_server

MODEL = "tiny-encoder"
OTHER = "tiny-encoder-short"
RIDE_THROUGH = RetryPolicy(attempts=12, backoff_base_s=0.2, backoff_max_s=1.0, deadline_s=90.0)
REQUESTS = 48
MODES = ["sync", "async"]


@pytest.fixture
def own_server(test_repository, tmp_path):
    servers = []

    def factory(name: str = "faults", ports=None):
        servers.append(start_private_server(test_repository.root, tmp_path, name, (MODEL, OTHER), ports))
        return servers[-1]

    yield factory
    for server in servers:
        server.stop()


def client_factory(server, root, retry: RetryPolicy, mode: str):
    """(model, protocol) -> a sync RerankerClient or an AsyncRerankerClient behind a blocking facade."""

    def make(model: str, protocol: str):
        url = server.grpc_url if protocol == "grpc" else server.http_url
        return make_client(mode, url, model, protocol, model_repository=str(root), retry=retry, timeout_s=60)

    return make


def wait_until(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    """Poll (a trigger for the next step, not a timing assertion)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def load_in_background(make, root, reference, pool, seed: int):
    report = LoadReport()
    config = LoadConfig([Target(MODEL)], workers=4, max_requests=REQUESTS, duration_s=240, seed=seed)
    thread = threading.Thread(
        target=run_load, args=(make, config, pool, reference), kwargs={"report": report}
    )
    thread.start()
    return report, thread


def assert_correct_or_one_clear_error(report: LoadReport) -> None:
    """Every call ended (no hang), none got wrong or partial scores, every failure is one
    ServerUnavailableError."""
    assert report.requests + len(report.errors) == REQUESTS, "a request was lost"
    assert not report.mismatches, report.mismatches[:3]
    assert set(report.error_types) <= {"ServerUnavailableError"}, report.errors[:3]


@pytest.mark.parametrize("mode", MODES)
def test_killed_stub_mid_load_recovered_by_reload_callers_get_correct_scores(
    own_server, test_repository, mode
):
    server = own_server(f"stub-kill-{mode}")
    make = client_factory(server, test_repository.root, RIDE_THROUGH, mode)
    pool = pair_pool(count=16)
    reference = reference_scores(make, [Target(MODEL)], pool)
    report, thread = load_in_background(make, test_repository.root, reference, pool, seed=3)
    wait_until(lambda: report.requests >= 8, what="load to start")
    (stub,) = stub_pids(server.process.pid, MODEL)
    os.kill(stub, signal.SIGKILL)
    wait_until(lambda: not is_alive(stub), what="stub to die")
    # The other model's stub is untouched and still answers correctly meanwhile.
    other = make(OTHER, "grpc")
    assert other.compute_score(pool[0], max_length=24) == pytest.approx(
        make(OTHER, "http").compute_score(pool[0], max_length=24), abs=1e-6
    )
    import tritonclient.grpc as grpcclient

    admin = grpcclient.InferenceServerClient(server.grpc_url)
    admin.unload_model(MODEL)
    wait_until(lambda: not admin.is_model_ready(MODEL), what="unload")
    with ThreadPoolExecutor(1) as executor:  # a client created while the model is unloaded waits for it
        late = executor.submit(lambda: make(MODEL, "http").compute_score([pool[0]]))  # HTTP: one thread
        admin.load_model(MODEL)
        assert late.result(timeout=120) == pytest.approx([reference[Target(MODEL)][0, 0]], abs=1e-4)
    thread.join(timeout=300)
    assert not thread.is_alive(), "load did not finish: a caller hung"
    print("stub kill:", report.summary())
    assert_correct_or_one_clear_error(report)
    assert report.requests > 8  # the load went on after the recovery
    assert stub_pids(server.process.pid, MODEL) != [stub]
    assert make(MODEL, "grpc").compute_score(pool[0]) == pytest.approx(
        reference[Target(MODEL)][0, 0], abs=1e-4
    )


@pytest.mark.parametrize("mode", MODES)
def test_killed_server_mid_load_restarted_on_same_ports(own_server, test_repository, mode):
    server = own_server(f"server-kill-{mode}")
    make_live = {"server": server}

    def make(model: str, protocol: str):
        return client_factory(make_live["server"], test_repository.root, RIDE_THROUGH, mode)(model, protocol)

    pool = pair_pool(count=16)
    reference = reference_scores(make, [Target(MODEL)], pool)
    report, thread = load_in_background(make, test_repository.root, reference, pool, seed=4)
    wait_until(lambda: report.requests >= 8, what="load to start")
    ports = (server.http_port, server.grpc_port, server.metrics_port)
    os.killpg(server.process.pid, signal.SIGKILL)  # tritonserver and its stubs, no clean shutdown
    server.process.wait()
    server.stop()
    make_live["server"] = own_server(f"server-restarted-{mode}", ports=ports)
    thread.join(timeout=300)
    assert not thread.is_alive(), "load did not finish: a caller hung"
    print("server kill:", report.summary())
    assert_correct_or_one_clear_error(report)
    assert report.requests > 8


@pytest.mark.parametrize("mode", MODES)
def test_dead_stub_without_recovery_gives_one_clear_error_and_spares_other_models(
    own_server, test_repository, mode
):
    server = own_server(f"stub-dead-{mode}")
    policy = RetryPolicy(attempts=3, backoff_base_s=0.1, backoff_max_s=0.2, deadline_s=20.0)
    make = client_factory(server, test_repository.root, policy, mode)
    client, other = make(MODEL, "grpc"), make(OTHER, "http")
    pair = ["what is panda?", "The giant panda is a bear species endemic to China."]
    before = other.compute_score(pair, max_length=24)
    (stub,) = stub_pids(server.process.pid, MODEL)
    os.kill(stub, signal.SIGKILL)
    wait_until(lambda: not is_alive(stub), what="stub to die")
    for c in (client, make(MODEL, "http")):
        with pytest.raises(ServerUnavailableError, match=r"gave up after 3 attempt.*backend process crashed"):
            c.compute_score([pair] * 3)
    assert other.compute_score(pair, max_length=24) == before


@pytest.mark.parametrize("mode", MODES)
def test_server_gone_gives_one_clear_error(own_server, test_repository, mode):
    server = own_server(f"gone-{mode}")
    policy = RetryPolicy(attempts=3, backoff_base_s=0.1, backoff_max_s=0.2, deadline_s=10.0)
    make = client_factory(server, test_repository.root, policy, mode)
    clients = [make(MODEL, "grpc"), make(MODEL, "http")]
    server.stop()
    for client in clients:
        with pytest.raises(ServerUnavailableError, match=r"gave up after \d attempt.*unreachable"):
            client.compute_score(["q", "p"])
    for protocol in ("grpc", "http"):
        with pytest.raises(ServerUnavailableError, match="unreachable"):
            make(MODEL, protocol)


class CountingPolicy(RetryPolicy):
    """A RetryPolicy that records each attempt, sync or asyncio."""

    attempts_made: list = []

    def call(self, fn, **kw):
        return super().call(lambda r: self.attempts_made.append(r) or fn(r), **kw)

    async def acall(self, fn, **kw):
        return await super().acall(lambda r: self.attempts_made.append(r) or fn(r), **kw)


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections (kernel backlog) and never answers: a hung server."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_client_timeout_bounds_each_attempt_the_same_way_and_is_not_retried(silent_server, mode, protocol):
    policy = CountingPolicy(attempts=5, backoff_base_s=0.01)
    policy.attempts_made.clear()
    with pytest.raises(RequestTimeoutError, match="timed out"):
        make_client(mode, silent_server, MODEL, protocol, timeout_s=0.5, retry=policy)
    assert len(policy.attempts_made) == 1
