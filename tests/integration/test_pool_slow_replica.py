"""A slow replica behind the rerank API (its own process): two fast latency-bound KServe gRPC
stand-ins (bench.fake_triton) and one ten times slower. The slow one gets far less than its fair
share of the traffic, and every answer is the one each replica gives on its own."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from bench.fake_triton import FakeTriton, passage_score
from tests.support.api_server import ApiProcess

pytestmark = pytest.mark.integration

LOAD_S = 6.0  # how long the load runs (its length, not a timing assertion)
QUERY = "what is panda?"
DOCUMENTS = ["hi", "The giant panda is a bear species endemic to China.", "大熊猫", "🐼"]


def test_a_slow_replica_gets_proportionally_less_traffic(tmp_path):
    fast = [FakeTriton(latency_s=0.02).start() for _ in range(2)]
    slow = FakeTriton(latency_s=0.2).start()
    api = None
    try:
        urls = ",".join(r.url for r in (*fast, slow))
        api = ApiProcess(urls, ["--default-model", "fake"], log_file=tmp_path / "api.log").start()
        expected = [float(np.float32(passage_score(QUERY.encode(), d.encode()))) for d in DOCUMENTS]
        failures: list[str] = []
        latencies: list[float] = []
        end = time.monotonic() + LOAD_S

        def worker() -> None:
            with httpx.Client(base_url=api.url, timeout=30) as client:
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

        threads = [threading.Thread(target=worker) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        if api is not None:
            api.stop()
        for replica in (*fast, slow):
            replica.stop()
    served = [r.requests for r in (*fast, slow)]
    fair = sum(served) / 3
    latencies.sort()
    print(
        f"requests per replica (fast, fast, slow): {served}; p50 {latencies[len(latencies) // 2]:.3f} s, "
        f"p99 {latencies[int(len(latencies) * 0.99)]:.3f} s"
    )
    assert not failures, failures[:3]
    assert min(served[:2]) > fair, served
    assert served[2] < 0.25 * fair, served  # ten times slower: much less than its share
