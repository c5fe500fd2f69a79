"""In-process ONNX Runtime measurements: graph variants, session options, batch sizes, peak GEMM.

`python -m bench.ort_variants [--quick] [--variants fp32,fused,...]` builds the variants of the
encoder (export/ort_optimize.py), times the 1 x 100 rerank workload on each and reports effective
GFLOP/s (real tokens only), the drift of the scores against the unoptimised fp32 model and the
top-10 agreement. Results: bench/results/ort_variants[-quick].json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from bench.common import BASE, QUICK, RESULTS, EncoderShape, kendall_tau, machine_info, top10_agreement
from bench.graphs import build_variant
from bench.models import build_encoder_checkpoint, export_encoder_onnx
from bench.result_file import write_result
from bench.workloads import encode_encoder_pairs, pad_batch, rerank_1x100
from export import ort_optimize as oo
from reranker_server.ort_session import available_cpus, create_session


def score_all(session: ort.InferenceSession, seqs: list[list[int]], batch: int) -> np.ndarray:
    """Scores in input order; length-sorted micro-batches of `batch` pairs (right padding)."""
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    out = np.empty(len(seqs), dtype=np.float32)
    for start in range(0, len(order), batch):
        idx = order[start : start + batch]
        ids, mask = pad_batch([seqs[i] for i in idx])
        out[idx] = session.run(["scores"], {"input_ids": ids, "attention_mask": mask})[0][:, 0]
    return out


def time_call(
    fn: Callable[[], object], reps: int, warmup: int = 1, cpu: list[float] | None = None
) -> list[float]:
    """Wall seconds per call; CPU seconds of this process per call appended to `cpu` if given.

    CPU time is the contention-robust figure on a shared machine: wall time stretches when other
    processes hold the cores, CPU time (with ORT spinning off) barely does.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return times


def gemm_peak(
    dtype: str = "fp32",
    m: int = 4096,
    k: int = 768,
    n: int = 3072,
    threads: int | None = None,
    reps: int = 5,
) -> float:
    """GFLOP/s (per CPU-second x threads) of one ORT MatMul: fp32 or int8 (DynamicQuantize+MatMulInteger)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((k, n), dtype=np.float32) * 0.05, "W")
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [m, k])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])
    graph = helper.make_graph([helper.make_node("MatMul", ["X", "W"], ["Y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"gemm_peak_{os.getpid()}.onnx"
    onnx.save(model, str(tmp))
    path = tmp
    if dtype == "int8":
        path = oo.quantize_int8(tmp, tmp.with_suffix(".int8.onnx"))
    sess = create_session(path, threads or 0)
    feed = {"X": rng.standard_normal((m, k), dtype=np.float32)}
    cpu: list[float] = []
    time_call(lambda: sess.run(None, feed), reps, cpu=cpu)
    best = min(cpu) / (threads or available_cpus())  # CPU-normalised: robust to contention
    for p in {tmp, path}:
        p.unlink(missing_ok=True)
    return 2.0 * m * k * n / best / 1e9


def run(
    shape: EncoderShape,
    variants: list[str],
    batches: list[int],
    reps: int,
    spinning: list[bool],
    passages: int,
    tokens: int,
    weight_std: float = 0.02,
) -> dict:
    ckpt = build_encoder_checkpoint(shape, weight_std=weight_std)
    fp32 = export_encoder_onnx(ckpt)
    work = rerank_1x100(ckpt, passages=passages, tokens=tokens)
    seqs = encode_encoder_pairs(ckpt, work.pairs)
    flops = sum(shape.matmul_flops_per_token(len(s)) * len(s) for s in seqs)
    result = {
        "machine": machine_info(),
        "shape": shape.__dict__,
        "workload": work.name,
        "pairs": len(seqs),
        "tokens": work.total_tokens,
        "gflop_per_call": flops / 1e9,
        "runs": [],
    }
    ref = score_all(
        create_session(fp32),
        seqs,
        max(batches),
    )
    result["score_std"] = float(np.std(ref))
    for variant in variants:
        path = build_variant(fp32, variant, shape.num_attention_heads, shape.hidden_size)
        for spin in spinning:
            t0 = time.perf_counter()
            sess = create_session(path, spinning=spin, pre_optimized=variant != "fp32")
            load_s = time.perf_counter() - t0
            for batch in batches:
                scores = score_all(sess, seqs, batch)
                cpu: list[float] = []
                times = time_call(lambda s=sess, b=batch: score_all(s, seqs, b), reps, warmup=0, cpu=cpu)
                best, med = min(times), float(np.median(times))
                cpu_s = float(np.median(cpu))
                row = {
                    "variant": variant,
                    "spinning": spin,
                    "batch": batch,
                    "load_s": load_s,
                    "best_s": best,
                    "median_s": med,
                    "pairs_per_s": len(seqs) / med,
                    "tokens_per_s": work.total_tokens / med,
                    "gflops": flops / med / 1e9,
                    "cpu_s": cpu_s,
                    "gflops_per_core": flops / cpu_s / 1e9,
                    "load_avg": os.getloadavg()[0],
                    "max_abs_drift": float(np.max(np.abs(scores - ref))),
                    "mean_abs_drift": float(np.mean(np.abs(scores - ref))),
                    "kendall_tau": kendall_tau(ref, scores),
                    "top10": top10_agreement(ref, scores),
                    "file_mb": path.stat().st_size / 2**20,
                }
                result["runs"].append(row)
                print(json.dumps(row), flush=True)
            del sess
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--variants", default="fp32,fused,int8")
    parser.add_argument("--batches", default="100")
    parser.add_argument("--spinning", default="0", help="comma list of 0/1")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--passages", type=int, default=100)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--weight-std", type=float, default=0.02)
    parser.add_argument("--peak", action="store_true", help="also measure fp32/int8 GEMM peak")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    shape = QUICK if args.quick else BASE
    result = run(
        shape,
        args.variants.split(","),
        [int(b) for b in args.batches.split(",")],
        args.reps,
        [s == "1" for s in args.spinning.split(",")],
        args.passages,
        args.tokens,
        args.weight_std,
    )
    if args.peak:
        result["gemm_peak_gflops"] = {"fp32": gemm_peak("fp32"), "int8": gemm_peak("int8")}
        print(result["gemm_peak_gflops"])
    out = Path(args.out) if args.out else RESULTS / f"ort_variants{'-quick' if args.quick else ''}.json"
    write_result(out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
