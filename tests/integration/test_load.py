"""Short load test (CI): concurrent gRPC and HTTP clients, every model of the test repository,
mixed lengths (some truncated) and, for LLM families, mixed parameters. Proves that under dynamic
batching every caller gets exactly its own scores (equal to the pair scored alone), no request
fails, and the server's memory (tritonserver + Python stubs) does not grow after warm-up.
The long version is `python -m tests.support.load.soak` (make soak)."""

from __future__ import annotations

import pytest

from tests.support.load.driver import LoadConfig, pair_pool, reference_scores, run_load, warm_up_peak
from tests.support.load.targets import targets_for_repository

# Steady-state growth allowed between the end of warm-up and the end of the measured run. A leak
# of one padded batch per request (>= 16 KiB x 100s of requests) or of one 1 MiB text per request
# exceeds it; allocator noise (ORT arena, gRPC buffers) stays well below.
RSS_GROWTH_LIMIT_MIB = 48.0
WORKERS = 6  # 3 gRPC + 3 HTTP client threads
REQUESTS = 80  # measured requests (CI size; `make soak` runs thousands)
MAX_LENGTH = 96  # CI truncation length (the long pairs are still truncated); soak uses 512


@pytest.fixture(scope="module")
def load_setup(triton_server, test_repository):
    from reranker_client import RerankerClient

    def make(model: str, protocol: str):
        url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
        return RerankerClient(url, model, protocol, model_repository=str(test_repository.root))

    targets = targets_for_repository(test_repository.root, max_length=MAX_LENGTH)
    pool = pair_pool(count=12)
    return make, targets, pool, reference_scores(make, targets, pool)


def test_concurrent_mixed_load_returns_each_pairs_own_score(load_setup, triton_server):
    make, targets, pool, reference = load_setup
    warm_up_peak(make, targets, pool, workers=WORKERS)
    warm = run_load(
        make,
        LoadConfig(targets, workers=WORKERS, max_requests=24, duration_s=40, seed=1),
        pool,
        reference,
        server_pid=triton_server.server_pid,
    )
    run = run_load(
        make,
        LoadConfig(targets, workers=WORKERS, max_requests=REQUESTS, duration_s=45, seed=2),
        pool,
        reference,
        server_pid=triton_server.server_pid,
    )
    print("warm-up:", warm.summary())
    print("load:", run.summary())
    assert not warm.errors and not run.errors, (warm.errors + run.errors)[:5]
    assert not warm.mismatches and not run.mismatches, (warm.mismatches + run.mismatches)[:5]
    assert run.requests > 0 and set(run.by_protocol) == {"grpc", "http"}
    assert run.requests + len(run.errors) == REQUESTS or run.wall_s >= 45  # nothing silently dropped
    growth = run.rss_mib[-1] - warm.rss_mib[-1]
    assert growth < RSS_GROWTH_LIMIT_MIB, f"server RSS grew {growth:.1f} MiB after warm-up"
