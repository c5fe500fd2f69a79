"""Capacity plan for Triton on Kubernetes: from measured pairs/s per GPU to replicas, the HPA's
queue-time target and bounds, and the cost per million pairs (docs/kubernetes.md).

    python deploy/kubernetes/capacity.py --pairs-per-gpu-s 3584

The queueing step is a model, not a measurement: one request of `pairs_per_request` pairs takes
S = pairs / rate on a GPU; at utilisation rho the mean wait of an M/D/1 queue is
rho / (2 (1 - rho)) * S, and its 99th percentile is estimated as ln(100) ~ 4.6 times the mean
(exponential tail).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """What follows from one measured throughput figure."""

    demand_pairs_s: float
    gpus: int  # Triton replicas (one GPU each) at the planned utilisation
    service_ms: float  # one request alone on one GPU
    mean_queue_ms: float  # model: M/D/1 at the planned utilisation
    p99_latency_ms: float  # model: p99 queue + service + API overhead
    hpa_target_queue_us: int  # HPA averageValue: mean queue time, rounded down to 5 ms
    min_replicas: int
    max_replicas: int
    usd_per_million_pairs: float


def plan(
    pairs_per_gpu_s: float,
    requests_per_s: float = 1000,
    pairs_per_request: int = 100,
    utilization: float = 0.7,
    spare_fraction: float = 0.1,
    min_replicas: int = 2,
    api_overhead_ms: float = 2.0,
    usd_per_gpu_hour: float = 4.0,
) -> Plan:
    """Replicas, HPA target and bounds, cost, for `requests_per_s` requests of
    `pairs_per_request` pairs on GPUs that each score `pairs_per_gpu_s` pairs per second."""
    if pairs_per_gpu_s <= 0 or requests_per_s <= 0 or pairs_per_request <= 0:
        raise ValueError("throughput, request rate and pairs per request must be positive")
    if not 0 < utilization < 1:
        raise ValueError(f"utilization must be in (0, 1), got {utilization}")
    demand = requests_per_s * pairs_per_request
    gpus = math.ceil(demand / (utilization * pairs_per_gpu_s))
    service_ms = 1000.0 * pairs_per_request / pairs_per_gpu_s
    mean_queue_ms = utilization / (2 * (1 - utilization)) * service_ms
    p99_ms = math.log(100) * mean_queue_ms + service_ms + api_overhead_ms
    target_us = int(mean_queue_ms // 5) * 5 * 1000
    max_replicas = gpus + math.ceil(spare_fraction * gpus)
    usd = usd_per_gpu_hour / (pairs_per_gpu_s * utilization * 3600) * 1e6
    return Plan(demand, gpus, service_ms, mean_queue_ms, p99_ms, target_us, min_replicas, max_replicas, usd)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs-per-gpu-s", type=float, required=True, help="measured pairs/s on one GPU")
    p.add_argument("--requests-per-s", type=float, default=1000)
    p.add_argument("--pairs-per-request", type=int, default=100)
    p.add_argument("--utilization", type=float, default=0.7)
    p.add_argument("--usd-per-gpu-hour", type=float, default=4.0)
    a = p.parse_args(argv)
    r = plan(
        a.pairs_per_gpu_s,
        a.requests_per_s,
        a.pairs_per_request,
        a.utilization,
        usd_per_gpu_hour=a.usd_per_gpu_hour,
    )
    print(f"demand {r.demand_pairs_s:,.0f} pairs/s -> {r.gpus} GPUs at {a.utilization:.0%} utilisation")
    print(
        f"one request alone: {r.service_ms:.1f} ms; mean queue (model) {r.mean_queue_ms:.1f} ms; "
        f"p99 latency (model) {r.p99_latency_ms:.0f} ms"
    )
    print(
        f"HPA: target {r.hpa_target_queue_us} us queue time per request, "
        f"minReplicas {r.min_replicas}, maxReplicas {r.max_replicas}"
    )
    print(f"cost: ${r.usd_per_million_pairs:.2f} per million pairs at ${a.usd_per_gpu_hour:.2f}/GPU-hour")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
