"""Client + server overhead of one rerank call, measured as paired A/B runs on a shared machine.

    python -m bench.client_overhead [--quick] [--variant fused] [--pairs 5]

The same 1 x 100 (~200 tokens) rerank call runs alternately (a) in this process: tokenization +
the server runner's own ORT session and re-batching (reranker_server.onnx_model), and (b) through
RerankerClient -> embedded Triton -> the same graph. Interleaving the two cancels most of the
load that other processes put on the machine; the overhead is the median over pairs of
t(served) / t(in-process) - 1 (wall) and the same for CPU seconds (client + server tree).
Results: bench/results/overhead[-quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from bench import procstats
from bench.common import (
    RESULTS,
    Plan,
    batch_tokens,
    embedded_server,
    inprocess_scorer,
    machine_info,
    sdk_client,
    served_repository,
)
from bench.graphs import build_variant
from bench.models import build_encoder_checkpoint, export_encoder_onnx
from bench.result_file import write_result
from bench.workloads import encode_encoder_pairs, rerank_1x100
from reranker_server.token_requests import TokenRows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variant", default="fused")
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs (after one warm-up each)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    plan = Plan(args.quick)
    shape = plan.shape
    ckpt = build_encoder_checkpoint(shape)
    fp32 = export_encoder_onnx(ckpt)
    work = rerank_1x100(ckpt, *plan.rerank)
    query, passages = work.pairs[0][0], [p for _, p in work.pairs]
    graph = build_variant(fp32, args.variant.split("+")[0], shape.num_attention_heads, shape.hidden_size)
    repo = served_repository(ckpt, fp32, [args.variant], shape)

    scorer = inprocess_scorer(graph, batch_tokens(args.variant))

    def inprocess() -> list[float]:
        rows = [np.asarray(s, dtype=np.int64) for s in encode_encoder_pairs(ckpt, work.pairs)]
        return scorer.score([TokenRows(rows)])[0][:, 0].tolist()

    model = f"enc-{args.variant}"
    server = embedded_server(repo, [model])
    server.start(timeout=600)
    rows = []
    try:
        pid = server.server_pid
        client = sdk_client(server.grpc_url, model, ckpt)

        def served() -> list[float]:
            res = client.rerank(query, passages, normalize=False)
            by_index = {r.index: r.score for r in res}
            return [by_index[i] for i in range(len(passages))]

        def timed(fn):
            c0, s0, t0 = time.process_time(), procstats.cpu_s(pid), time.perf_counter()
            out = fn()
            return out, time.perf_counter() - t0, time.process_time() - c0 + procstats.cpu_s(pid) - s0

        ref, got = inprocess(), served()  # warm-up both
        max_diff = float(np.abs(np.asarray(ref) - np.asarray(got)).max())
        for k in range(args.pairs):
            order = (
                (("inproc", inprocess), ("served", served))
                if k % 2 == 0
                else (("served", served), ("inproc", inprocess))
            )
            row = {}
            for name, fn in order:
                _, wall, cpu = timed(fn)
                row[f"{name}_wall_s"], row[f"{name}_cpu_s"] = wall, cpu
            row["load_avg"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
        client.close()
    finally:
        server.stop()
    wall = [r["served_wall_s"] / r["inproc_wall_s"] - 1 for r in rows]
    cpu = [r["served_cpu_s"] / r["inproc_cpu_s"] - 1 for r in rows]
    result = {
        "machine": machine_info(),
        "variant": args.variant,
        "workload": work.name,
        "tokens": work.total_tokens,
        "pairs": rows,
        "max_abs_score_diff": max_diff,
        "overhead_wall_median": float(np.median(wall)),
        "overhead_cpu_median": float(np.median(cpu)),
        "inproc_wall_median_s": float(np.median([r["inproc_wall_s"] for r in rows])),
        "served_wall_median_s": float(np.median([r["served_wall_s"] for r in rows])),
    }
    out = (
        Path(args.out)
        if args.out
        else RESULTS / f"overhead-{args.variant}{'-quick' if args.quick else ''}.json"
    )
    write_result(out, result)
    print(
        f"overhead {args.variant}: wall {result['overhead_wall_median']:+.1%}, "
        f"cpu {result['overhead_cpu_median']:+.1%} (median of {len(rows)} pairs); wrote {out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
