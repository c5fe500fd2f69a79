"""Three real embedded Triton replicas behind the endpoint pool, under steady mixed load: the rerank
API (its own process; TEI, Cohere and NIM shapes) and the SDK (sync and asyncio, gRPC and HTTP),
all given the three replicas plus an address where nothing ever listens.

One replica starts late; once it is in, traffic is spread over the three (each within 0.5x..2x of
its fair share, counted by Triton itself). Then one replica is SIGKILLed mid-load, another drained
(SIGTERM), the killed one started again and a third restarted: no caller sees an error, and every
score equals the single-server score. The never-started address is ejected and gets no request."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from pathlib import Path

import httpx
import numpy as np
import pytest

from reranker_client import AsyncRerankerClient, RerankerClient
from reranker_server.embedded import free_ports
from reranker_server.replicas import ReplicaSet
from tests.support.api_server import ApiProcess
from tests.support.load.api_load import ApiLoadReport, reference_scores, run_api_load
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

MODEL = "tiny-encoder"
WAIT_S = 300  # upper bounds for a loaded machine; triggers for the next step, not timing assertions
QUERIES = ["what is panda?", "大熊猫是什么？", "q"]
PASSAGES = (
    [p for _, p in MULTILINGUAL_PAIRS] + [p for _, p in TUTORIAL_PAIRS[:2]] + [p for _, p in many_pairs(4)]
)
SDK_PAIRS = MULTILINGUAL_PAIRS + many_pairs(6)
TOLERANCE = 1e-4  # the same pair in another batch: float rounding only (as the API load test)


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("pool_repo")
    build_repository(root, tmp_path_factory.mktemp("pool_ckpt"), ENCODER_MODELS[:1])
    return root


def triton_successes(replicas: ReplicaSet, i: int) -> int:
    """Successful inferences replica i has done (all models), from Triton's own metrics."""
    server = replicas.servers[i]
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read()
    found = re.findall(rb"^nv_inference_request_success\{[^}]*\} (\d+)", text, re.MULTILINE)
    return sum(int(n) for n in found)


def api_endpoint_series(api_url: str, name: str) -> dict[str, float]:
    text = httpx.get(api_url + "/metrics", timeout=10).text
    pattern = rf'^reranker_api_triton_endpoint_{name}\{{endpoint="([^"]+)"\}} (\S+)'
    return {a: float(v) for a, v in re.findall(pattern, text, re.MULTILINE)}


class SdkLoad:
    """SDK callers (sync gRPC, sync HTTP, asyncio gRPC, asyncio HTTP) scoring SDK_PAIRS in a loop,
    each answer compared with the single-server scores."""

    def __init__(self, grpc_urls: str, http_urls: str, expected: list[float]) -> None:
        self.urls = {"grpc": grpc_urls, "http": http_urls}
        self.expected = np.array(expected)
        self.stop = threading.Event()
        self.ok: dict[str, int] = {}
        self.failures: list[str] = []
        self.endpoints: dict[str, list] = {}
        self.threads = [
            threading.Thread(target=self._sync, args=(p,), name=f"sdk-sync-{p}") for p in ("grpc", "http")
        ] + [threading.Thread(target=lambda: asyncio.run(self._async_all()), name="sdk-async")]

    def _check(self, name: str, scores) -> None:
        got = np.array(scores)
        if got.shape != self.expected.shape or np.abs(got - self.expected).max() > TOLERANCE:
            self.failures.append(f"{name}: scores {got.tolist()} != {self.expected.tolist()}")
        else:
            self.ok[name] = self.ok.get(name, 0) + 1

    def _sync(self, protocol: str) -> None:
        name = f"sync-{protocol}"
        try:
            with RerankerClient(self.urls[protocol], MODEL, protocol, timeout_s=60) as client:
                while not self.stop.is_set():
                    self._check(name, client.compute_score(SDK_PAIRS))
                self.endpoints[name] = client.endpoints
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")

    async def _async_all(self) -> None:
        await asyncio.gather(*(self._async(p) for p in ("grpc", "http")))

    async def _async(self, protocol: str) -> None:
        name = f"async-{protocol}"
        try:
            client = await AsyncRerankerClient.connect(self.urls[protocol], MODEL, protocol, timeout_s=60)
            try:
                while not self.stop.is_set():
                    self._check(name, await client.compute_score(SDK_PAIRS))
                self.endpoints[name] = client.endpoints
            finally:
                await client.close()
        except Exception as exc:  # noqa: BLE001 - any error fails the test
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")


def test_three_replicas_through_late_start_kill_drain_and_restart(repository, tmp_path):
    replicas = ReplicaSet(
        repository, 3, log_dir=tmp_path / "logs", drain_timeout_s=20, environment={"OMP_NUM_THREADS": "1"}
    )
    (never_started,) = free_ports(1)
    dead = f"127.0.0.1:{never_started}"
    grpc_urls = ",".join([*replicas.grpc_urls, dead])
    http_urls = ",".join([*replicas.http_urls, dead])
    api = sdk = load = None
    report, stop_api_load = ApiLoadReport(), threading.Event()
    try:
        replicas.start(0)
        replicas.start(1)  # replica 2 starts late
        with RerankerClient(replicas.grpc_urls[0], MODEL) as single:
            expected = list(single.compute_score(SDK_PAIRS))
        reference = reference_scores(replicas.grpc_urls[0], {MODEL: {}}, QUERIES, PASSAGES)

        api = ApiProcess(grpc_urls, ["--default-model", MODEL], log_file=tmp_path / "api.log").start()
        wait_until(lambda: httpx.get(api.url + "/health", timeout=10).status_code == 200, "the API healthy")
        sdk = SdkLoad(grpc_urls, http_urls, expected)
        load = threading.Thread(
            target=run_api_load,
            args=(api.url, {}, {MODEL: {}}, QUERIES, PASSAGES, reference),
            kwargs={
                "workers": 3,
                "max_requests": 10**6,
                "duration_s": 900,
                "stop": stop_api_load,
                "report": report,
            },
        )
        load.start()
        for thread in sdk.threads:
            thread.start()
        wait_until(lambda: report.ok >= 10 and len(sdk.ok) == 4, "load through the API and the 4 SDK callers")

        replicas.start(2)  # late: the pool takes it in without a restart of its callers
        wait_until(
            lambda: api_endpoint_series(api.url, "up").get(replicas.grpc_urls[2]) == 1.0, "replica 2 in"
        )
        time.sleep(1.0)  # let the SDK callers probe it back too (backoff at most 5 s)
        wait_until(lambda: triton_successes(replicas, 2) > 0, "replica 2 serving")
        before = [triton_successes(replicas, i) for i in range(3)]
        time.sleep(8.0)  # steady load over three replicas
        served = [triton_successes(replicas, i) - n for i, n in enumerate(before)]
        fair = sum(served) / 3
        assert all(0.5 * fair <= n <= 2 * fair for n in served), f"per-replica inferences {served}"

        replicas.kill(1)  # SIGKILL mid-load
        time.sleep(2.0)
        replicas.drain(0)  # SIGTERM: in-flight requests finish, new ones go elsewhere
        time.sleep(1.0)
        replicas.start(1)  # the killed one back on its ports
        replicas.start(0)
        replicas.restart(2)  # drain and start again
        time.sleep(2.0)
        report.mark()
        wait_until(lambda: report.ok_after_mark >= 10, "load going on after the restarts")
    finally:
        stop_api_load.set()
        if sdk is not None:
            sdk.stop.set()
            for thread in sdk.threads:
                thread.join(WAIT_S)
        if load is not None:
            load.join(WAIT_S)
        dead_requests = api_endpoint_series(api.url, "requests_total").get(dead) if api is not None else None
        if api is not None:
            api.stop()
        replicas.stop()

    print("API:", report.summary(), "SDK:", sdk.ok, "dead endpoint requests via the API:", dead_requests)
    assert not report.failures and not report.mismatches, report.summary()
    assert set(report.statuses) == {200}
    assert not sdk.failures, sdk.failures[:3]
    assert all(sdk.ok.get(n, 0) > 0 for n in ("sync-grpc", "sync-http", "async-grpc", "async-http")), sdk.ok
    assert dead_requests == 0.0  # ejected at the first probe: never a request
    for name, states in sdk.endpoints.items():
        (status,) = [s for s in states if s.address == dead]
        assert status.state == "ejected" and status.requests == 0, (name, status)
