"""LLM reranker fp32 vs bf16 on CPU, served: part "llm" of bench/precision.py (`--llm`).

The random-weight Gemma-2B shape (bench/llm_bench.py's GEMMA_2B) exported twice with the
product's exporter, `--dtype float32` and `--dtype bfloat16`, both served by ONE embedded Triton
server (the Python backend's CPU config: the project's torch decoder) and called through
reranker_client (token path), one call per model and round, the order alternating from round to
round so that load on a shared machine hits both alike. Reported per model: pairs/s of the
median round, server CPU seconds per pair (contention-robust), and bf16 / fp32 ratios.

Memory: both models are resident at once (fp32 4 bytes and bf16 2 bytes per parameter, plus the
transient fp32 copy of one tensor while bf16 casts). When MemAvailable cannot hold that, the
same shape with fewer decoder layers is used (per-layer cost is identical) and the result says so.

Profile (`--llm-profile bfloat16|float32`): one call of that dtype's scorer in this process under
torch.profiler, the ops with the most CPU time and their share.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer
from torch.profiler import ProfilerActivity, profile

from bench import procstats
from bench.common import CACHE, RESULTS, Log, cpu_ratio, embedded_server, export_once, sdk_client
from bench.llm_bench import GEMMA_2B, QUICK_GEMMA, DecoderShape, build_decoder_checkpoint, mem_available_gb
from bench.workloads import Workload, encoder_pairs
from reranker_core.manifest import ModelManifest
from reranker_core.options import parse_options
from reranker_core.packing import pad_rows
from reranker_core.pipeline import prepare_pairs
from reranker_server.llm import LLMScorer, load_scorer

DTYPES = ("float32", "bfloat16")
RESERVE_GB = 3.0  # tritonserver, two backend stubs, the client and the machine's other work


@dataclasses.dataclass(frozen=True)
class LlmPlan:
    """Sizes of one run: the decoder shape, the pairs (1 query x `passages`) and the rounds."""

    shape: DecoderShape
    passages: int
    tokens: int  # per pair, before the reranker's prompt
    rounds: int


FULL_PLAN = LlmPlan(GEMMA_2B, passages=8, tokens=200, rounds=3)
QUICK_PLAN = LlmPlan(QUICK_GEMMA, passages=4, tokens=40, rounds=2)


def resident_gb(shape: DecoderShape) -> float:
    """RAM both served models need: fp32 + bf16 weights and one fp32 embedding while casting."""
    embed = shape.vocab * shape.hidden
    return (4 + 2) * shape.params() / 2**30 + 4 * embed / 2**30 + RESERVE_GB


def with_layers(shape: DecoderShape, layers: int) -> DecoderShape:
    """The same shape with `layers` decoder layers (named for it unless that is all of them)."""
    if layers == shape.layers:
        return shape
    return dataclasses.replace(shape, name=f"{shape.name}-{layers}l", layers=layers)


def fitting_layers(shape: DecoderShape, available_gb: float, most: int | None = None) -> int:
    """The most layers of `shape` (at most `most`, at least 1) whose two models fit in `available_gb`."""
    layers = min(most or shape.layers, shape.layers)
    while layers > 1 and resident_gb(with_layers(shape, layers)) > available_gb:
        layers -= 1
    return layers


def model_name(dtype: str) -> str:
    """The served model of one dtype: llm-float32, llm-bfloat16."""
    return f"llm-{dtype}"


def prepare_repository(checkpoint: Path, shape: DecoderShape) -> Path:
    """One repository with the checkpoint exported once per dtype (weights linked, not copied)."""
    repo = CACHE / f"repo-precision-{shape.name}"
    for dtype in DTYPES:
        export_once(checkpoint, repo, model_name(dtype), "--dtype", dtype)
    return repo


def served_rows(model_dir: Path, work: Workload) -> list[list[int]]:
    """Token rows of the pairs as the product encodes them (the reranker's prompt included)."""
    manifest = ModelManifest.load(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer.file))
    prepared = prepare_pairs(tokenizer, manifest, work.pairs, parse_options({}, manifest))
    return [list(row.input_ids) for row in prepared.rows]


def cpu_scorer(model_dir: Path, dtype: str) -> tuple[ModelManifest, LLMScorer]:
    """An exported LLM reranker's manifest and its torch scorer at `dtype` on the CPU, in this
    process: the manifest's family, checkpoint and "yes" token, as the served model loads it."""
    manifest = ModelManifest.load(model_dir)
    llm = manifest.llm
    kwargs = {"yes_token_id": llm.yes_token_id} if llm.yes_token_id is not None else {}
    scorer = load_scorer(manifest.family, model_dir / llm.checkpoint_dir, dtype=dtype, device="cpu", **kwargs)
    return manifest, scorer


def profile_scorer(model_dir: Path, rows: list[list[int]], dtype: str, top: int = 10) -> dict[str, Any]:
    """One call of the served model's torch scorer at `dtype`, in this process, under
    torch.profiler: wall seconds and the ops with the most CPU time (share of the total)."""
    manifest, scorer = cpu_scorer(model_dir, dtype)
    ids, mask = (torch.from_numpy(a) for a in pad_rows(rows, manifest.pad_id))
    scorer.score(ids[:1, :16], mask[:1, :16])  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        scorer.score(ids, mask)
        wall = time.perf_counter() - t0
    ops = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ops)
    return {
        "dtype": dtype,
        "threads": torch.get_num_threads(),
        "rows": len(rows),
        "wall_s": wall,
        "ops": [
            {"op": e.key, "self_cpu_s": e.self_cpu_time_total / 1e6, "share": e.self_cpu_time_total / total}
            for e in ops[:top]
        ],
    }


def round_order(index: int) -> tuple[str, ...]:
    """fp32 first in even rounds, bf16 first in odd ones."""
    return DTYPES if index % 2 == 0 else DTYPES[::-1]


def summarize(walls: dict[str, list[float]], cpus: dict[str, list[float]], pairs: int) -> dict[str, Any]:
    """Per dtype: pairs/s of the median round and server CPU s per pair; bf16 / fp32 ratios
    (of the medians, and round by round: rounds ran back to back under the same load)."""
    out: dict[str, Any] = {}
    for dtype in DTYPES:
        wall, cpu = statistics.median(walls[dtype]), statistics.median(cpus[dtype])
        out[dtype] = {
            "pairs_per_s": pairs / wall,
            "wall_s": walls[dtype],
            "server_cpu_s": cpus[dtype],
            "server_cpu_s_per_pair": cpu / pairs,
        }
    fp32, bf16 = DTYPES
    out["bf16_vs_fp32"] = out[bf16]["pairs_per_s"] / out[fp32]["pairs_per_s"]
    out["bf16_vs_fp32_rounds"] = [a / b for a, b in zip(walls[fp32], walls[bf16])]
    out["bf16_vs_fp32_cpu"] = cpu_ratio(
        out[fp32]["server_cpu_s_per_pair"], out[bf16]["server_cpu_s_per_pair"]
    )
    return out


def run(
    quick: bool,
    log: Log = print,
    rounds: int | None = None,
    layers: int | None = None,
    profile_dtype: str | None = None,
) -> dict:
    """Serve both dtypes of the plan's shape, time them in alternating rounds (rounds=0: none);
    with `profile_dtype` also profile one call of that dtype's scorer in this process afterwards.
    The result dict."""
    plan = QUICK_PLAN if quick else FULL_PLAN
    available = mem_available_gb()
    shape = with_layers(plan.shape, fitting_layers(plan.shape, available, layers))
    if shape.layers != plan.shape.layers:
        log(f"LLM precision: {available:.1f} GB available: {shape.layers} of {plan.shape.layers} layers")
    log(f"LLM precision {shape.name}: checkpoint ({shape.params() / 1e9:.2f} B params)")
    checkpoint = build_decoder_checkpoint(shape)
    repo = prepare_repository(checkpoint, shape)
    work = encoder_pairs(
        checkpoint, [plan.tokens] * plan.passages, name=f"1x{plan.passages}x{plan.tokens}tok"
    )
    pairs = [list(p) for p in work.pairs]
    rows = served_rows(repo / model_name(DTYPES[0]), work)
    result: dict[str, Any] = {
        "shape": dataclasses.asdict(shape),
        "full_layers": plan.shape.layers,
        "params_b": shape.params() / 1e9,
        "mem_available_gb": available,
        "pairs": len(pairs),
        "tokens_per_pair": statistics.mean(len(r) for r in rows),
        "rounds": plan.rounds if rounds is None else rounds,
    }
    if result["rounds"]:
        result.update(serve_rounds(repo, checkpoint, pairs, result["rounds"], log))
    if profile_dtype:
        log(f"LLM precision {shape.name}: profiling the {profile_dtype} scorer in-process")
        result["profile"] = profile_scorer(repo / model_name(profile_dtype), rows, profile_dtype)
        for op in result["profile"]["ops"]:
            log(f"  {op['op']}: {100 * op['share']:.1f} %")
    return result


def serve_rounds(repo: Path, checkpoint: Path, pairs: list[list[str]], rounds: int, log: Log) -> dict:
    """Both dtypes served by one embedded server, timed through the client in alternating rounds."""
    result: dict[str, Any] = {}
    models = [model_name(d) for d in DTYPES]
    server = embedded_server(repo, models, RESULTS / "server-llm-precision.log.tmp")
    t0 = time.perf_counter()
    server.start(timeout=1800)
    result["startup_s"] = time.perf_counter() - t0
    walls: dict[str, list[float]] = {d: [] for d in DTYPES}
    cpus: dict[str, list[float]] = {d: [] for d in DTYPES}
    loads: list[float] = []
    with server, procstats.PeakRss(server.server_pid) as rss:
        clients = {d: sdk_client(server.grpc_url, model_name(d), checkpoint, timeout_s=1800) for d in DTYPES}
        try:
            scores = {d: clients[d].compute_score(pairs) for d in DTYPES}  # warm-up, and the scores
            for r in range(rounds):
                loads.append(os.getloadavg()[0])
                for dtype in round_order(r):
                    c0, t0 = procstats.cpu_s(server.server_pid), time.perf_counter()
                    clients[dtype].compute_score(pairs)
                    walls[dtype].append(time.perf_counter() - t0)
                    cpus[dtype].append(procstats.cpu_s(server.server_pid) - c0)
                    log(f"LLM precision round {r + 1} {dtype}: {len(pairs) / walls[dtype][-1]:.3f} pairs/s")
        finally:
            for client in clients.values():
                client.close()
    result.update(summarize(walls, cpus, len(pairs)))
    result["peak_rss_mb"] = rss.peak_mb
    result["load_avg_1min_per_round"] = loads
    result["max_abs_diff_bf16_vs_fp32"] = max(abs(a - b) for a, b in zip(*scores.values()))
    log(
        f"LLM precision: fp32 {result['float32']['pairs_per_s']:.3f} pairs/s, "
        f"bf16 {result['bfloat16']['pairs_per_s']:.3f} pairs/s ({result['bf16_vs_fp32']:.2f}x)"
    )
    return result
