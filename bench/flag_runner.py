"""FlagEmbedding side of the benchmark; run by the oracle interpreter (.venv-oracle), never imported
by the product. Reads one JSON job on stdin, prints one JSON result on stdout:

  {"kind": "encoder" | "llm" | "layerwise", "model": dir, "init": {...}, "warmup_pairs": [[q, p]],
   "workloads": [{"name": str, "pairs": [[q, p], ...], "score": {...}, "reps": int,
                  "latency_calls": int}]}

For each workload: wall and CPU seconds of `compute_score(pairs)` (best and median of `reps`),
the scores of the last run, and `latency_calls` timings of the same call (FlagEmbedding has no
server: concurrency 1 only). Peak RSS of this process is reported as well.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _reranker(job: dict):
    from FlagEmbedding import FlagLLMReranker, FlagReranker, LayerWiseFlagLLMReranker

    classes = {"encoder": FlagReranker, "llm": FlagLLMReranker, "layerwise": LayerWiseFlagLLMReranker}
    init = {"use_fp16": False, "devices": ["cpu"], **job.get("init", {})}
    if job["kind"] == "layerwise":
        init.setdefault("trust_remote_code", True)
    return classes[job["kind"]](job["model"], **init)


def _timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    import torch

    job = json.load(sys.stdin)
    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    t0 = time.perf_counter()
    reranker = _reranker(job)
    load_s = time.perf_counter() - t0
    if job.get("warmup_pairs"):
        reranker.compute_score(job["warmup_pairs"], **job.get("warmup_score", {}))
    results = []
    for work in job["workloads"]:
        pairs, kwargs = work["pairs"], work.get("score", {})
        walls, cpus, scores = [], [], None
        for _ in range(max(1, int(work.get("reps", 1)))):
            scores, wall, cpu = _timed(lambda: reranker.compute_score(pairs, **kwargs))
            walls.append(wall)
            cpus.append(cpu)
        latency = []
        for _ in range(int(work.get("latency_calls", 0))):
            latency.append(_timed(lambda: reranker.compute_score(work["latency_pairs"], **kwargs))[1])
        if not isinstance(scores, list):
            scores = [scores]
        results.append(
            {"name": work["name"], "wall_s": walls, "cpu_s": cpus, "scores": scores, "latency_s": latency}
        )
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    json.dump(
        {
            "load_s": load_s,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "peak_rss_mb": peak_kb / 1024,
            "results": results,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
