"""Replicas that differ, behind the rerank API (its own process), as latency-bound KServe gRPC
stand-ins (bench.fake_triton) whose scores depend on their manifest: a replica ten times slower
than the two others gets well under its fair share of the traffic, and almost none once the fast
ones are saturated (its every answer would be slower than theirs, so it would set the p99: make
bench-replicas measures that p99); a replica serving another manifest gets none. Every answer is
the one the expected replicas give on their own."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from bench.fake_triton import MANIFEST, FakeTriton
from tests.support.api_server import ApiProcess

pytestmark = pytest.mark.integration

LOAD_S = 6.0  # how long the load runs (its length, not a timing assertion)
QUERY = "what is panda?"
DOCUMENTS = ["hi", "The giant panda is a bear species endemic to China.", "大熊猫", "🐼"]


def load(
    api_url: str, expected: list[float], seconds: float, callers: int = 6
) -> tuple[list[str], list[float]]:
    """`callers` sending TEI /rerank (raw scores) for `seconds`: the failures and latencies."""
    failures: list[str] = []
    latencies: list[float] = []
    end = time.monotonic() + seconds

    def worker() -> None:
        with httpx.Client(base_url=api_url, timeout=30) as client:
            while time.monotonic() < end:
                start = time.perf_counter()
                r = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS, "raw_scores": True})
                latencies.append(time.perf_counter() - start)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")
                    continue
                got = {x["index"]: x["score"] for x in r.json()}
                if [got.get(i) for i in range(len(DOCUMENTS))] != expected:
                    failures.append(f"scores {got} != {expected}")

    threads = [threading.Thread(target=worker) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return failures, sorted(latencies)


def expected_scores(replica: FakeTriton) -> list[float]:
    return [float(np.float32(replica.service.score(QUERY.encode(), d.encode()))) for d in DOCUMENTS]


@pytest.mark.parametrize(
    "callers, capacity, most",
    [(6, None, 0.5), (24, 2, 0.06)],
    ids=["fast-replicas-keep-up", "fast-replicas-saturated"],
)
def test_a_slow_replica_gets_proportionally_less_traffic(tmp_path, callers, capacity, most):
    """Saturated: 2 fast replicas serve 2 requests at a time in 40 ms, 24 callers queue ~11 deep on
    each (~240 ms), the slow one would take 400 ms: it gets only the requests that renew its average
    (after 2 s, then spaced up to 16 s while it stays slow). Counted after a warm-up: a pool that
    knows no latency yet spreads its first burst evenly (docs/scale-out.md)."""
    wait = 0.02 if capacity is None else 0.04
    fast = [FakeTriton(latency_s=wait, capacity=capacity).start() for _ in range(2)]
    slow = FakeTriton(latency_s=10 * wait, capacity=capacity).start()
    api = None
    try:
        urls = ",".join(r.url for r in (*fast, slow))
        api = ApiProcess(urls, ["--default-model", "fake"], log_file=tmp_path / "api.log").start()
        expected = expected_scores(fast[0])
        failures, _ = load(api.url, expected, 1.0, callers)
        before = [r.requests for r in (*fast, slow)]
        more_failures, latencies = load(api.url, expected, LOAD_S, callers)
        failures += more_failures
    finally:
        if api is not None:
            api.stop()
        for replica in (*fast, slow):
            replica.stop()
    served = [r.requests - b for r, b in zip((*fast, slow), before, strict=True)]
    fair = sum(served) / 3
    print(
        f"requests per replica (fast, fast, slow): {served}; p50 {latencies[len(latencies) // 2]:.3f} s, "
        f"p99 {latencies[int(len(latencies) * 0.99)]:.3f} s"
    )
    assert not failures, failures[:3]
    assert min(served[:2]) > fair, served
    assert served[2] < most * fair, served  # ten times slower: well under its share


def test_a_replica_serving_another_manifest_gets_no_request(tmp_path):
    same = [FakeTriton(latency_s=0.005).start() for _ in range(2)]
    other = FakeTriton(latency_s=0.005, manifest={**MANIFEST, "source": "fake/reranker-v2"}).start()
    api = None
    try:
        assert expected_scores(other) != expected_scores(same[0])  # a mix would show
        urls = ",".join(r.url for r in (other, *same))
        api = ApiProcess(urls, ["--default-model", "fake"], log_file=tmp_path / "api.log").start()
        failures, _ = load(api.url, expected_scores(same[0]), 2.0)
        up = httpx.get(api.url + "/metrics", timeout=10).text
    finally:
        if api is not None:
            api.stop()
        for replica in (other, *same):
            replica.stop()
    assert not failures, failures[:3]
    assert other.requests == 0 and min(r.requests for r in same) > 0
    assert (
        f'reranker_api_triton_endpoint_up{{endpoint="{other.url}"}} 1.0' in up
    )  # live, but not for this model
