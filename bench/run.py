"""`make bench`: FlagEmbedding vs this project (client -> embedded Triton server) vs ONNX Runtime
in-process, on random-weight models of the real shapes, in one invocation.

    python -m bench.run [--quick] [--variants fp32,fused,int8] [--concurrency 1,4,16] [--llm]

Workloads (encoder, bge-reranker-base shape): one query x 100 passages of ~200 tokens (a rerank
call), 500 pairs of mixed lengths 16..256 (compute_score), and small rerank calls for latency at
several concurrency levels. Reported: pairs/s, tokens/s (real tokens, no padding), p50/p95/p99
latency, peak RSS of the tritonserver process tree, CPU seconds (contention-robust: this machine
is shared), score drift and top-10 agreement of each variant against FlagEmbedding fp32.
Section "precision" (bench/precision.py, --precision): fp32 vs bf16 vs int8 CPU graphs, quality on
the trained fixture and speed in-process and served (with --llm also the LLM Gemma-2B shape fp32
vs bf16, served). Section "text_path" (bench/text_path.py): the same rerank call
through the text model vs the token model. Section "api_overhead" (bench/api_overhead.py): the
rerank HTTP API in front of the text model vs the text model called directly.
Results: bench/results/bench[-quick].json and .png.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bench import api_overhead, llm_bench, precision, procstats, text_path
from bench.common import (
    RESULTS,
    Log,
    Plan,
    batch_tokens,
    drift,
    embedded_server,
    inprocess_scorer,
    latency_stats,
    machine_info,
    run_flag_runner,
    sdk_client,
    served_repository,
    stamped_log,
    throughput,
)
from bench.graphs import build_variant
from bench.models import build_encoder_checkpoint, export_encoder_onnx
from bench.result_file import write_result
from bench.workloads import Workload, encode_encoder_pairs, mixed_pairs, rerank_1x100
from reranker_server.token_requests import TokenRows


# ----------------------------------------------------------------------------- FlagEmbedding
def run_flagembedding(
    ckpt: Path, works: dict[str, Workload], latency: Workload, plan: Plan, timeout: float = 1800
) -> dict:
    """FlagReranker fp32 on CPU in the oracle env; same checkpoint directory, same pairs."""
    job = {
        "kind": "encoder",
        "model": str(ckpt),
        "warmup_pairs": [list(p) for p in latency.pairs],
        "workloads": [
            {
                "name": name,
                "pairs": [list(p) for p in w.pairs],
                "reps": plan.reps,
                "latency_calls": 3 if name == "rerank" else 0,
                "latency_pairs": [list(p) for p in latency.pairs],
            }
            for name, w in works.items()
        ],
    }
    out = run_flag_runner(job, timeout)
    result: dict[str, Any] = {
        "load_s": out["load_s"],
        "threads": out["threads"],
        "peak_rss_mb": out["peak_rss_mb"],
        "workloads": {},
    }
    for r in out["results"]:
        w = works[r["name"]]
        wall, cpu = float(np.median(r["wall_s"])), float(np.median(r["cpu_s"]))
        result["workloads"][r["name"]] = {**throughput(w, wall, cpu, out["threads"]), "scores": r["scores"]}
        if r["latency_s"]:
            result["latency_c1"] = latency_stats(r["latency_s"])
    return result


# ----------------------------------------------------------------------------- ORT in-process
def run_inprocess(
    onnx_path: Path,
    ckpt: Path,
    works: dict[str, Workload],
    plan: Plan,
    max_batch_tokens: int,
) -> dict:
    """Tokenize + score in this process with exactly the runner's session and re-batching."""
    scorer = inprocess_scorer(onnx_path, max_batch_tokens)
    cores = os.cpu_count() or 1

    def call(w: Workload) -> list[float]:
        rows = [np.asarray(s, dtype=np.int64) for s in encode_encoder_pairs(ckpt, w.pairs)]
        return scorer.score([TokenRows(rows)])[0][:, 0].tolist()

    call(Workload("warm", list(works["rerank"].pairs[:4]), []))
    out: dict[str, Any] = {}
    for name, w in works.items():
        walls, cpus, scores = [], [], None
        for _ in range(plan.reps):
            c0, t0 = time.process_time(), time.perf_counter()
            scores = call(w)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        out[name] = {
            **throughput(w, float(np.median(walls)), float(np.median(cpus)), cores),
            "scores": scores,
        }
    return out


# ----------------------------------------------------------------------------- served
def run_served(
    repo: Path,
    model: str,
    ckpt: Path,
    works: dict[str, Workload],
    latency: Workload,
    plan: Plan,
    levels: list[int],
    log: Log,
) -> dict:
    """Start the embedded server with only `model`, then time client calls against it."""
    server = embedded_server(repo, [model], RESULTS / f"server-{model}.log.tmp")
    t0 = time.perf_counter()
    server.start(timeout=600)
    out: dict[str, Any] = {"startup_s": time.perf_counter() - t0}
    try:
        pid = server.server_pid
        cores = os.cpu_count() or 1
        with procstats.PeakRss(pid) as rss:
            out["idle_rss_mb"] = rss.sample()
            client = sdk_client(server.grpc_url, model, ckpt)
            q, passages = latency.pairs[0][0], [p for _, p in latency.pairs]
            client.rerank(q, passages)  # warm-up (first-call allocations, arena growth)
            for name, w in works.items():
                walls, cpus, scores = [], [], None
                for _ in range(plan.reps):
                    c0, s0, t0 = time.process_time(), procstats.cpu_s(pid), time.perf_counter()
                    if name == "rerank":
                        res = client.rerank(w.pairs[0][0], [p for _, p in w.pairs], normalize=False)
                        by_index = {r.index: r.score for r in res}
                        scores = [by_index[i] for i in range(len(w.pairs))]
                    else:
                        scores = client.compute_score([list(p) for p in w.pairs])
                    walls.append(time.perf_counter() - t0)
                    cpus.append(time.process_time() - c0 + procstats.cpu_s(pid) - s0)
                out[name] = {
                    **throughput(w, float(np.median(walls)), float(np.median(cpus)), cores),
                    "scores": scores,
                }
                log(f"  {model} {name}: {out[name]['pairs_per_s']:.2f} pairs/s")
            out["latency"] = {}
            for c in levels:
                out["latency"][str(c)] = _latency_level(
                    server.grpc_url, model, ckpt, q, passages, c, plan.latency_requests(c), len(latency.pairs)
                )
                log(f"  {model} concurrency {c}: p50 {out['latency'][str(c)]['p50_s']:.3f}s")
            client.close()
        out["peak_rss_mb"] = rss.peak_mb
    finally:
        server.stop()
    return out


def _latency_level(
    url: str,
    model: str,
    ckpt: Path,
    query: str,
    passages: list[str],
    c: int,
    requests: int,
    pairs_per_call: int,
) -> dict:
    clients = [sdk_client(url, model, ckpt) for _ in range(c)]
    times: list[float] = []

    def worker(k: int) -> None:
        cl = clients[k]
        for _ in range(k, requests, c):
            t0 = time.perf_counter()
            cl.rerank(query, passages)
            times.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(c) as pool:
        list(pool.map(worker, range(c)))
    elapsed = time.perf_counter() - t0
    for cl in clients:
        cl.close()
    return {**latency_stats(times), "concurrency": c, "pairs_per_s": requests * pairs_per_call / elapsed}


# ----------------------------------------------------------------------------- report
def summarize(result: dict) -> dict:
    """Ratios against FlagEmbedding and the client+server overhead over ORT in-process."""
    summary: dict[str, Any] = {}
    flag = result.get("flagembedding", {}).get("workloads", {})
    for variant, served in result.get("served", {}).items():
        for name, row in served.items():
            if name not in ("rerank", "mixed"):
                continue
            s: dict[str, Any] = {"pairs_per_s": row["pairs_per_s"]}
            if name in flag:
                s["x_flagembedding_wall"] = row["pairs_per_s"] / flag[name]["pairs_per_s"]
                s["x_flagembedding_cpu_norm"] = (
                    row["pairs_per_s_cpu_norm"] / flag[name]["pairs_per_s_cpu_norm"]
                )
                s["drift_vs_flagembedding"] = drift(flag[name]["scores"], row["scores"])
            inproc = result.get("inprocess", {}).get(variant, {}).get(name)
            if inproc:
                s["overhead_vs_inprocess_wall"] = inproc["pairs_per_s"] / row["pairs_per_s"] - 1
                s["overhead_vs_inprocess_cpu"] = row["cpu_s"] / inproc["cpu_s"] - 1
            if "gflop" in result and name in result["gflop"]:
                s["gflops_wall"] = result["gflop"][name] / row["wall_s"]
                s["gflops_cpu_norm"] = result["gflop"][name] * (os.cpu_count() or 1) / row["cpu_s"]
            summary[f"{variant}/{name}"] = s
    return summary


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8))
    names = [k for k in result["workloads"] if k != "latency"]
    labels: list[str] = []
    values: dict[str, list[float]] = {k: [] for k in names}
    flag = result.get("flagembedding", {}).get("workloads")
    groups = ([("FlagEmbedding fp32", flag)] if flag else []) + [
        (f"{title} {variant}", rows)
        for group, title in (("inprocess", "ORT in-process"), ("served", "client+Triton"))
        for variant, rows in result.get(group, {}).items()
    ]
    for label, rows in groups:
        labels.append(label)
        for k in names:
            values[k].append(rows.get(k, {}).get("pairs_per_s", 0.0))
    x = np.arange(len(labels))
    width = 0.8 / max(1, len(names))
    for j, k in enumerate(names):
        ax1.bar(x + (j - (len(names) - 1) / 2) * width, values[k], width, label=result["workloads"][k])
    ax1.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax1.set_ylabel("pairs / s (wall)")
    ax1.set_title(f"{result['shape']['name']} throughput")
    ax1.legend(fontsize=8)
    for variant, rows in result.get("served", {}).items():
        lat = rows.get("latency", {})
        levels = sorted(int(c) for c in lat)
        for q, style in (("p50_s", "-o"), ("p99_s", "--x")):
            ax2.plot(levels, [lat[str(c)][q] for c in levels], style, label=f"{variant} {q[:3]}")
    ax2.set_xscale("log", base=2)
    ax2.set_xlabel("concurrent rerank calls")
    ax2.set_ylabel(f"latency of one {result['workloads']['latency']} call (s)")
    ax2.set_title("client+Triton latency")
    ax2.legend(fontsize=8)
    fig.suptitle(
        f"{result['machine']['cpu']} ({result['machine']['cpus']} CPUs), {result['machine']['date']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (CI smoke test)")
    parser.add_argument(
        "--variants",
        default="fused+t1024,int8+t1024",
        help="graph (fp32 as exported, fused, int8, int8-full, int8-matmul) plus "
        "+t<N>: the runner's max_batch_tokens",
    )
    parser.add_argument("--concurrency", default="1,4,16")
    parser.add_argument("--skip-flagembedding", action="store_true")
    parser.add_argument("--skip-server", action="store_true")
    parser.add_argument("--skip-text-path", action="store_true", help="skip bench/text_path.py's section")
    parser.add_argument(
        "--text-path-variant", default="int8+t1024", help="graph the text path section serves"
    )
    parser.add_argument("--skip-api", action="store_true", help="skip bench/api_overhead.py's section")
    parser.add_argument("--skip-inprocess", action="store_true")
    parser.add_argument("--workloads", default="rerank,mixed", help="subset of rerank,mixed")
    parser.add_argument("--llm", action="store_true", help="also the LLM reranker workloads")
    parser.add_argument(
        "--precision",
        action="store_true",
        help="also bench/precision.py's section: fp32 vs bf16 vs int8 in-process and served "
        "(with --llm also the LLM Gemma-2B shape fp32 vs bf16)",
    )
    parser.add_argument("--out", default=None, help="JSON path (PNG written beside it)")
    args = parser.parse_args(argv)
    plan = Plan(args.quick)
    variants = [v for v in args.variants.split(",") if v]
    levels = [int(c) for c in args.concurrency.split(",") if c]
    log = stamped_log
    RESULTS.mkdir(parents=True, exist_ok=True)

    shape = plan.shape
    ckpt = build_encoder_checkpoint(shape)
    fp32 = export_encoder_onnx(ckpt)
    works = {"rerank": rerank_1x100(ckpt, *plan.rerank), "mixed": mixed_pairs(ckpt, *plan.mixed)}
    works = {k: w for k, w in works.items() if k in args.workloads.split(",")}
    latency = rerank_1x100(ckpt, *plan.latency, seed=5)
    gflop = {
        name: sum(shape.matmul_flops_per_token(len(s)) * len(s) for s in encode_encoder_pairs(ckpt, w.pairs))
        / 1e9
        for name, w in works.items()
    }
    result: dict[str, Any] = {
        "machine": machine_info(),
        "shape": shape.__dict__,
        "quick": args.quick,
        "workloads": {
            **{k: f"{w.name} ({w.total_tokens} tokens)" for k, w in works.items()},
            "latency": latency.name,
        },
        "gflop": gflop,
        "load_avg_start": os.getloadavg(),
    }
    if not args.skip_flagembedding:
        log("FlagEmbedding fp32 (oracle env)")
        result["flagembedding"] = run_flagembedding(ckpt, works, latency, plan)
    result["inprocess"] = {}
    for variant in variants:
        if args.skip_inprocess:
            continue
        log(f"ORT in-process {variant}")
        path = build_variant(fp32, variant.split("+")[0], shape.num_attention_heads, shape.hidden_size)
        result["inprocess"][variant] = run_inprocess(path, ckpt, works, plan, batch_tokens(variant))
    if not args.skip_server:
        repo = served_repository(ckpt, fp32, variants, shape)
        result["served"] = {}
        for variant in variants:
            log(f"client -> embedded Triton, {variant}")
            result["served"][variant] = run_served(
                repo, f"enc-{variant}", ckpt, works, latency, plan, levels, log
            )
    if not (args.skip_server or args.skip_text_path):
        result["text_path"] = text_path.run(
            ckpt,
            text_path.QUICK_PLAN if args.quick else text_path.FULL_PLAN,
            args.text_path_variant,
            log,
            RESULTS / "server-text-path.log.tmp",
        )
    if not (args.skip_server or args.skip_api):
        log("rerank HTTP API vs the text model directly (quick encoder shape)")
        result["api_overhead"] = api_overhead.run(log, rounds=2 if args.quick else api_overhead.ROUNDS)
        for line in api_overhead.table(result["api_overhead"]):
            log(line)
    if args.llm:
        result["llm"] = llm_bench.run(quick=args.quick, log=log)
    if args.precision:
        log("CPU graphs fp32 vs bf16 vs int8: trained-fixture quality, base-shape speed (in-process, served)")
        result["precision"] = precision.run(args.quick, list(precision.GRAPHS), 3, do_llm=args.llm, log=log)
    result["load_avg_end"] = os.getloadavg()
    result["summary"] = summarize(result)
    out = Path(args.out) if args.out else RESULTS / f"bench{'-quick' if args.quick else ''}.json"
    write_result(out, result)
    chart(result, out.with_suffix(".png"))
    log(f"wrote {out} and {out.with_suffix('.png')}")
    for key, s in result["summary"].items():
        log(f"{key}: " + ", ".join(f"{k}={v:.3g}" for k, v in s.items() if isinstance(v, float)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
