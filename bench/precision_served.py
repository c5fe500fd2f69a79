"""Encoder fp32 vs bf16 vs int8, served: part "served" of bench/precision.py.

The variants bench/precision.py exports (`python -m export --cpu-graph fused|bf16|int8`, each
with its text model) are served together by ONE embedded Triton server and called two ways:

  token  reranker_client.RerankerClient(tokenize="client").compute_score -> `<variant>`: the
         client tokenizes and sends token ids.
  text   RerankerClient(tokenize="server").compute_score -> `<variant>-text`: raw strings, the
         server tokenizes.

Each round makes one call per (workload, path, variant), the variants' order rotating from round
to round so that load on a shared machine hits every variant alike. Reported: pairs/s of the
median round, server CPU seconds per pair (contention-robust) and each variant's ratio to fp32
on the same path.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import procstats
from bench.common import RESULTS, Log, cpu_ratio, embedded_server, sdk_client
from bench.workloads import Workload
from reranker_client import RerankerClient
from reranker_core.tensors import text_model_name

PATHS = ("token", "text")
WARMUP_PAIRS = 32


def client_for(url: str, variant: str, path: str, checkpoint: Path) -> RerankerClient:
    """The SDK client of one (variant, path): token ids to the model, or text to its text model."""
    if path == "token":
        return sdk_client(url, variant, checkpoint, timeout_s=1800, tokenize="client")
    if path == "text":
        return sdk_client(
            url, text_model_name(variant), checkpoint, timeout_s=1800, tokenize="server", tokenizer_path=None
        )
    raise ValueError(f"unknown path {path!r}; known: {', '.join(PATHS)}")


def rotated(variants: Sequence[str], index: int) -> list[str]:
    """The variants in round `index`'s order: each one leads a round in turn."""
    k = index % len(variants)
    return list(variants[k:]) + list(variants[:k])


def summarize(
    walls: dict[str, list[float]], cpus: dict[str, list[float]], pairs: int, baseline: str = "fp32"
) -> dict[str, dict[str, Any]]:
    """Per variant: pairs/s of the median round, server CPU ms per pair, and the ratios to
    `baseline` (of the medians, of the CPU time, and round by round)."""
    out: dict[str, dict[str, Any]] = {}
    for variant, rounds in walls.items():
        out[variant] = {
            "pairs_per_s": pairs / statistics.median(rounds),
            "wall_s": rounds,
            "server_cpu_ms_per_pair": 1000 * statistics.median(cpus[variant]) / pairs,
        }
    base = out[baseline]
    for variant, row in out.items():
        row["vs_fp32"] = row["pairs_per_s"] / base["pairs_per_s"]
        row["vs_fp32_cpu"] = cpu_ratio(base["server_cpu_ms_per_pair"], row["server_cpu_ms_per_pair"])
        row["vs_fp32_rounds"] = [b / a for a, b in zip(walls[variant], walls[baseline])]
    return out


def run(
    repository: Path,
    checkpoint: Path,
    variants: Sequence[str],
    works: Sequence[Workload],
    rounds: int,
    log: Log,
) -> dict[str, Any]:
    """Serve every variant and its text model; time each (workload, path) in alternating rounds."""
    models = [m for v in variants for m in (v, text_model_name(v))]
    server = embedded_server(repository, models, RESULTS / "server-precision.log.tmp")
    t0 = time.perf_counter()
    server.start(timeout=900)
    result: dict[str, Any] = {"startup_s": time.perf_counter() - t0, "paths": list(PATHS), "workloads": {}}
    walls = {(w.name, p): {v: [] for v in variants} for w in works for p in PATHS}
    cpus = {(w.name, p): {v: [] for v in variants} for w in works for p in PATHS}
    clients: dict[tuple[str, str], RerankerClient] = {}
    loads: list[float] = []
    with server, procstats.PeakRss(server.server_pid) as rss:
        try:
            for v in variants:
                for p in PATHS:
                    clients[v, p] = client_for(server.grpc_url, v, p, checkpoint)
            for w in works:  # warm-up: every connection, model instance and first-call allocation
                for v in variants:
                    for p in PATHS:
                        clients[v, p].compute_score(list(w.pairs[:WARMUP_PAIRS]))
            scores = {}  # of the first round, compared between the paths
            for r in range(rounds):
                loads.append(os.getloadavg()[0])
                for w in works:
                    for p in PATHS:
                        for v in rotated(variants, r):
                            c0, t0 = procstats.cpu_s(server.server_pid), time.perf_counter()
                            got = clients[v, p].compute_score(list(w.pairs))
                            walls[w.name, p][v].append(time.perf_counter() - t0)
                            cpus[w.name, p][v].append(procstats.cpu_s(server.server_pid) - c0)
                            scores.setdefault((w.name, v, p), np.asarray(got))
                            log(
                                f"served round {r + 1}/{rounds} {w.name} {p} {v}: "
                                f"{len(w.pairs) / walls[w.name, p][v][-1]:.2f} pairs/s"
                            )
        finally:
            for client in clients.values():
                client.close()
    for w in works:
        result["workloads"][w.name] = {
            "pairs": len(w.pairs),
            "tokens": w.total_tokens,
            **{p: summarize(walls[w.name, p], cpus[w.name, p], len(w.pairs)) for p in PATHS},
            "max_abs_diff_text_vs_token": {
                v: float(np.abs(scores[w.name, v, "text"] - scores[w.name, v, "token"]).max())
                for v in variants
            },
            "max_abs_score": {v: float(np.abs(scores[w.name, v, "token"]).max()) for v in variants},
        }
    result["peak_rss_mb"] = rss.peak_mb
    result["load_avg_1min_per_round"] = loads
    return result
