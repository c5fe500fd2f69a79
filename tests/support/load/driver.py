"""Load driver: many concurrent clients (gRPC and HTTP, several models, mixed lengths and
parameters) against one Triton server; every returned score is checked against the score the
same pair gets when sent alone, so any cross-talk inside the server's dynamic batches shows up.

Used by tests/integration/test_load.py (short, bounded) and by `python -m tests.support.load.soak`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reranker_server.process_tree import tree_rss_mib
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs

ClientFactory = Callable[[str, str], Any]  # (model, protocol) -> RerankerClient


@dataclass(frozen=True)
class Target:
    """One model called with one set of compute_score keyword arguments."""

    model: str
    kwargs: tuple[tuple[str, Any], ...] = ()
    tolerance: float = 1e-4  # |score under load - score alone|; fp16 models need more

    @property
    def call_kwargs(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def __str__(self) -> str:
        return self.model + (f"{self.call_kwargs}" if self.kwargs else "")


def pair_pool(count: int = 40, long_words: int = 3000) -> list[list[str]]:
    """Deterministic pairs of mixed lengths and scripts, two of them far over any max_length
    (truncated by the client) and some one-word ones."""
    long_passage = " ".join(f"word{i % 97} panda bamboo" for i in range(long_words // 3))
    return (
        [list(p) for p in TUTORIAL_PAIRS]
        + [list(p) for p in MULTILINGUAL_PAIRS]
        + many_pairs(count)
        + [["long document?", long_passage], ["hi", "yo"], [long_passage[:5000], "short passage"]]
    )


def as_rows(scores: Any, n: int) -> np.ndarray:
    """compute_score's result as [n, layers] (one column unless several cutoff layers)."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 1:
        return arr.reshape(n, 1)
    return arr.T.reshape(n, -1)


def reference_scores(
    make_client: ClientFactory, targets: Sequence[Target], pool: Sequence[Sequence[str]]
) -> dict[Target, np.ndarray]:
    """Each pair scored ALONE (one pair per call, one call at a time): [len(pool), layers]."""
    out = {}

    def score_alone(model_targets: list[Target]) -> None:
        client = make_client(model_targets[0].model, "grpc")
        try:
            for target in model_targets:
                out[target] = np.concatenate(
                    [as_rows(client.compute_score([list(p)], **target.call_kwargs), 1) for p in pool]
                )
        finally:
            client.close()

    # One thread per model: requests to different models never share a batch, so each pair is
    # still alone in its model's execute() call.
    by_model: dict[str, list[Target]] = {}
    for target in targets:
        by_model.setdefault(target.model, []).append(target)
    threads = [threading.Thread(target=score_alone, args=(ts,)) for ts in by_model.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    missing = [str(t) for t in targets if t not in out]
    if missing:
        raise RuntimeError(f"reference scoring failed for {missing}")
    return out


def warm_up_peak(
    make_client: ClientFactory,
    targets: Sequence[Target],
    pool: Sequence[Sequence[str]],
    *,
    workers: int = 6,
    pairs: int = 8,
    rounds: int = 2,
) -> None:
    """Drive every model to its peak working set: `workers` clients at once, each sending the
    `pairs` longest pairs, so the server merges them into its largest batches. ONNX Runtime's
    arena keeps its peak size, so memory is only comparable after this."""
    longest = sorted(range(len(pool)), key=lambda i: -sum(len(t) for t in pool[i]))[:pairs]
    batch = [list(pool[i]) for i in longest]
    first_per_model = {t.model: t for t in reversed(list(targets))}
    for target in first_per_model.values():
        clients = [make_client(target.model, "grpc") for _ in range(workers)]
        try:
            for _ in range(rounds):
                threads = [
                    threading.Thread(target=c.compute_score, args=(batch,), kwargs=target.call_kwargs)
                    for c in clients
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
        finally:
            for c in clients:
                c.close()


@dataclass
class LoadReport:
    requests: int = 0
    pairs: int = 0
    errors: list[str] = field(default_factory=list)
    error_types: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    max_abs_diff: float = 0.0
    rss_mib: list[float] = field(default_factory=list)  # sampled during the run
    by_protocol: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q)) if self.latencies_s else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "pairs": self.pairs,
            "errors": len(self.errors),
            "mismatches": len(self.mismatches),
            "max_abs_diff": self.max_abs_diff,
            "p50_ms": round(self.percentile(50) * 1000, 1),
            "p99_ms": round(self.percentile(99) * 1000, 1),
            "by_protocol": self.by_protocol,
            "wall_s": round(self.wall_s, 1),
            "throughput_rps": round(self.requests / self.wall_s, 1) if self.wall_s else 0.0,
            "rss_mib_first": round(self.rss_mib[0], 1) if self.rss_mib else None,
            "rss_mib_last": round(self.rss_mib[-1], 1) if self.rss_mib else None,
            "rss_mib_max": round(max(self.rss_mib), 1) if self.rss_mib else None,
            "first_errors": self.errors[:3],
            "first_mismatches": self.mismatches[:3],
        }


@dataclass
class LoadConfig:
    targets: Sequence[Target]
    workers: int = 4
    protocols: Sequence[str] = ("grpc", "http")
    max_requests: int = 200  # total over all workers
    duration_s: float = 30.0  # stop earlier when reached (whichever comes first)
    pairs_per_request: tuple[int, int] = (1, 8)
    seed: int = 0
    rss_every_s: float = 0.5


def run_load(
    make_client: ClientFactory,
    config: LoadConfig,
    pool: Sequence[Sequence[str]],
    reference: dict[Target, np.ndarray],
    server_pid: int | None = None,
    report: LoadReport | None = None,
) -> LoadReport:
    """Drive `config.workers` threads, each with its own clients, until max_requests or duration_s.
    Pass `report` to watch progress from another thread (fault injection)."""
    report = report if report is not None else LoadReport()
    lock = threading.Lock()
    issued = [0]
    stop = threading.Event()
    deadline = time.monotonic() + config.duration_s

    def take() -> bool:
        with lock:
            if issued[0] >= config.max_requests or time.monotonic() >= deadline:
                return False
            issued[0] += 1
            return True

    def worker(index: int) -> None:
        rng = random.Random(config.seed * 1000 + index)
        protocol = config.protocols[index % len(config.protocols)]
        clients: dict[str, Any] = {}
        try:
            while take():
                target = rng.choice(list(config.targets))
                k = rng.randint(*config.pairs_per_request)
                chosen = [rng.randrange(len(pool)) for _ in range(k)]
                start = time.monotonic()
                try:
                    if target.model not in clients:
                        clients[target.model] = make_client(target.model, protocol)
                    scores = clients[target.model].compute_score(
                        [list(pool[j]) for j in chosen], **target.call_kwargs
                    )
                    got = as_rows(scores, k)
                except Exception as exc:  # every failure is recorded, none ends the run
                    with lock:
                        report.errors.append(f"{protocol} {target}: {type(exc).__name__}: {exc}")
                        report.error_types.append(type(exc).__name__)
                    continue
                elapsed = time.monotonic() - start
                want = reference[target][chosen]
                diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
                with lock:
                    report.requests += 1
                    report.pairs += k
                    report.latencies_s.append(elapsed)
                    report.by_protocol[protocol] = report.by_protocol.get(protocol, 0) + 1
                    report.max_abs_diff = max(report.max_abs_diff, diff)
                    if diff > target.tolerance:
                        report.mismatches.append(
                            f"{protocol} {target} pairs {chosen}: got {got.ravel()[:8]}"
                            f" want {want.ravel()[:8]} (max diff {diff:.3g})"
                        )
        finally:
            for client in clients.values():
                client.close()

    def sampler() -> None:
        while not stop.wait(config.rss_every_s):
            report.rss_mib.append(tree_rss_mib(server_pid))

    if server_pid is not None:
        report.rss_mib.append(tree_rss_mib(server_pid))
        sampling = threading.Thread(target=sampler, daemon=True)
        sampling.start()
    began = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), name=f"load-{i}") for i in range(config.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.wall_s = time.monotonic() - began
    stop.set()
    if server_pid is not None:
        sampling.join()
        report.rss_mib.append(tree_rss_mib(server_pid))
    return report
