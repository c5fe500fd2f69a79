"""Text path vs token path on the embedded Triton server: the same rerank call (1 query x N
passages) sent three ways to the same served encoder, in alternating rounds so that load on the
machine hits every path alike.

    python -m bench.text_path [--quick] [--variant int8+t1024] [--concurrency 1,16] [--rounds N]

Paths:
  token     reranker_client.RerankerClient(tokenize="client") -> `<name>`: the client tokenizes
            and sends token ids.
  text      raw tritonclient gRPC -> `<name>-text`: query BYTES [1], passages BYTES [N], the way a
            caller in any language calls it; the server tokenizes.
  text-sdk  RerankerClient(tokenize="server") -> `<name>-text`.

Reported per path and concurrency level: pairs/s (all rounds), p50/p99 latency of one call, CPU
seconds per pair of the server tree plus this process (the client), and the ratio text/token;
tokenization time per pair with the product's reranker_core.pipeline.prepare_pairs (what the
client does) and prepare_pairs + bucketed packing (what the text model does).
`make bench` runs this as one section of bench.run; results also go to
bench/results/text-path[-quick].json when run alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tokenizers import Tokenizer

from bench import procstats
from bench.common import (
    BASE,
    QUICK,
    RESULTS,
    EncoderShape,
    Log,
    embedded_server,
    machine_info,
    sdk_client,
    served_repository,
    stamped_log,
)
from bench.models import build_encoder_checkpoint, export_encoder_onnx
from bench.result_file import write_result
from bench.workloads import Workload, rerank_1x100
from export.config_check import parse_config
from export.text_export import DEFAULT_TEXT_INSTANCES, export_text_model
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS
from reranker_core.manifest import ModelManifest
from reranker_core.options import parse_options
from reranker_core.pipeline import prepare_pairs
from reranker_core.tensors import PASSAGES, QUERY, SCORES, text_model_name

PATHS = ("token", "text", "text-sdk")
TEXT_PATHS = ("text", "text-sdk")
TARGET_RATIO = 0.9  # the text path's throughput within 10 % of the token path's


@dataclass(frozen=True)
class TextPathPlan:
    """Sizes of one run: workload, concurrency levels, rounds, calls per worker and round."""

    shape: EncoderShape
    passages: int
    tokens: int
    levels: tuple[int, ...]
    rounds: dict[int, int]  # per level (default 2)
    calls_per_worker: dict[int, int]  # per level and round (default 1)
    tokenize_reps: int

    def rounds_for(self, level: int) -> int:
        return self.rounds.get(level, 2)

    def calls(self, level: int) -> int:
        return self.calls_per_worker.get(level, 1)


# One call per worker and round: the paths alternate as finely as the workload allows.
FULL_PLAN = TextPathPlan(
    BASE,
    passages=100,
    tokens=200,
    levels=(1, 16),
    rounds={1: 6, 16: 2},
    calls_per_worker={},
    tokenize_reps=30,
)
QUICK_PLAN = TextPathPlan(
    QUICK, passages=20, tokens=64, levels=(1, 4), rounds={1: 3, 4: 2}, calls_per_worker={}, tokenize_reps=5
)


# ----------------------------------------------------------------------------- repository
def prepare_repository(
    checkpoint: Path, variant: str, shape: EncoderShape, text_instances: int | None = None
) -> tuple[Path, str]:
    """bench.run's served repository with `enc-<variant>` and its text model (written by the
    exporter's own writer, with `text_instances` instances: default the export's); (repository, name)."""
    fp32 = export_encoder_onnx(checkpoint)
    repo = served_repository(checkpoint, fp32, [variant], shape)
    name = f"enc-{variant}"
    export_text_model(repo / name, instance_count=text_instances or DEFAULT_TEXT_INSTANCES)
    return repo, name


# ----------------------------------------------------------------------------- callers
class RawTextCaller:
    """What a caller in any language does: BYTES tensors to `<name>-text` over gRPC."""

    def __init__(self, url: str, model: str, timeout_s: float) -> None:
        self._grpc = grpcclient
        self.client = grpcclient.InferenceServerClient(url)
        self.model, self.timeout_s = text_model_name(model), timeout_s

    def __call__(self, query: str, passages: Sequence[str]) -> list[float]:
        g = self._grpc
        q = g.InferInput(QUERY, [1], "BYTES")
        q.set_data_from_numpy(np.array([query.encode("utf-8")], dtype=np.object_))
        p = g.InferInput(PASSAGES, [len(passages)], "BYTES")
        p.set_data_from_numpy(np.array([t.encode("utf-8") for t in passages], dtype=np.object_))
        result = self.client.infer(
            self.model, [q, p], outputs=[g.InferRequestedOutput(SCORES)], client_timeout=self.timeout_s
        )
        return result.as_numpy(SCORES)[-1].astype(np.float64).tolist()

    def close(self) -> None:
        self.client.close()


class SdkCaller:
    """RerankerClient.rerank (raw logits), returned in passage order."""

    def __init__(self, url: str, model: str, tokenize: str, checkpoint: Path, timeout_s: float) -> None:
        # The model a caller names: the token model to tokenize here, the text model otherwise.
        name = model if tokenize == "client" else text_model_name(model)
        self.client = sdk_client(
            url,
            name,
            checkpoint,
            timeout_s,
            tokenize=tokenize,
            tokenizer_path=str(checkpoint) if tokenize == "client" else None,
        )
        if self.client.tokenize != tokenize:
            raise RuntimeError(f"asked for tokenize={tokenize!r}, the client chose {self.client.tokenize!r}")

    def __call__(self, query: str, passages: Sequence[str]) -> list[float]:
        scores = [0.0] * len(passages)
        for r in self.client.rerank(query, list(passages), normalize=False):
            scores[r.index] = r.score
        return scores

    def close(self) -> None:
        self.client.close()


def make_caller(path: str, url: str, model: str, checkpoint: Path, timeout_s: float = 600.0):
    if path == "token":
        return SdkCaller(url, model, "client", checkpoint, timeout_s)
    if path == "text":
        return RawTextCaller(url, model, timeout_s)
    if path == "text-sdk":
        return SdkCaller(url, model, "server", checkpoint, timeout_s)
    raise ValueError(f"unknown path {path!r}; known: {', '.join(PATHS)}")


# ----------------------------------------------------------------------------- timing
@dataclass
class Sample:
    """One (path, level, round): wall time of the whole wave, each call's latency, CPU seconds."""

    wall_s: float
    latencies_s: list[float]
    cpu_s: float
    pairs: int


def run_wave(
    callers: Sequence[Callable], query: str, passages: Sequence[str], calls_per_worker: int, server_pid: int
) -> tuple[Sample, list[float]]:
    """len(callers) threads, each making `calls_per_worker` calls back to back, released together."""
    latencies: list[float] = []
    errors: list[BaseException] = []
    scores: list[list[float]] = []
    gate = threading.Barrier(len(callers) + 1)
    lock = threading.Lock()

    def worker(call: Callable) -> None:
        gate.wait()
        try:
            for _ in range(calls_per_worker):
                t0 = time.perf_counter()
                got = call(query, passages)
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    if not scores:
                        scores.append(got)
        except BaseException as exc:  # reported after the wave
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in callers]
    for t in threads:
        t.start()
    c0, s0 = time.process_time(), procstats.cpu_s(server_pid)
    gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0 + procstats.cpu_s(server_pid) - s0
    if errors:
        raise RuntimeError(f"{len(errors)} call(s) failed: {errors[0]!r}") from errors[0]
    return Sample(wall, latencies, cpu, len(latencies) * len(passages)), scores[0]


def round_order(round_index: int) -> list[str]:
    """Paths rotated each round, so that no path always runs first (or right after another)."""
    k = round_index % len(PATHS)
    return list(PATHS[k:] + PATHS[:k])


def summarize_level(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    """Per path: pairs/s over all rounds, latency percentiles, CPU per pair; ratios text/token."""
    out: dict[str, Any] = {}
    for path, rows in samples.items():
        pairs, wall = sum(s.pairs for s in rows), sum(s.wall_s for s in rows)
        lat = [x for s in rows for x in s.latencies_s]
        out[path] = {
            "pairs_per_s": pairs / wall,
            "p50_s": float(np.percentile(lat, 50)),
            "p99_s": float(np.percentile(lat, 99)),
            "calls": len(lat),
            "pairs": pairs,
            "wall_s": wall,
            "cpu_ms_per_pair": 1000 * sum(s.cpu_s for s in rows) / pairs,
            "round_pairs_per_s": [s.pairs / s.wall_s for s in rows],
        }
    token = out["token"]
    for path in TEXT_PATHS:
        row = out[path]
        row["ratio_vs_token"] = row["pairs_per_s"] / token["pairs_per_s"]
        # Rounds ran back to back under the same load: their ratios are the contention-robust view.
        row["round_ratios_vs_token"] = [
            a / b for a, b in zip(row["round_pairs_per_s"], token["round_pairs_per_s"])
        ]
        row["median_round_ratio"] = statistics.median(row["round_ratios_vs_token"])
        row["cpu_ratio_vs_token"] = row["cpu_ms_per_pair"] / token["cpu_ms_per_pair"]
        row["within_target"] = row["ratio_vs_token"] >= TARGET_RATIO
    return out


# ----------------------------------------------------------------------------- tokenization
def tokenization_per_pair(
    checkpoint: Path, repository: Path, model: str, work: Workload, reps: int
) -> dict[str, float]:
    """Median microseconds per pair of the product's tokenization: the client's prepare_pairs +
    packing, and the text model's prepare_pairs + bucketed packing (same code as each runs)."""
    manifest = ModelManifest.load(repository / model)
    tokenizer = Tokenizer.from_file(str(repository / model / manifest.tokenizer.file))
    options = parse_options({}, manifest)
    pairs = list(work.pairs)

    def timed(buckets: bool | None) -> float:
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            prepared = prepare_pairs(tokenizer, manifest, pairs, options)
            if buckets is not None:
                prepared.batches(
                    manifest,
                    max_pairs=manifest.max_batch_size,
                    max_tokens=CLIENT_MAX_REQUEST_TOKENS,
                    buckets=buckets,
                )
            times.append(time.perf_counter() - t0)
        return 1e6 * statistics.median(times) / len(pairs)

    timed(None)  # warm-up
    return {
        "prepare_pairs_us": timed(None),
        "client_us": timed(False),
        "text_model_us": timed(True),
        "pairs": len(pairs),
        "tokens_per_pair": work.total_tokens / len(pairs),
        "reps": reps,
    }


# ----------------------------------------------------------------------------- the section
def run(
    checkpoint: Path,
    plan: TextPathPlan,
    variant: str,
    log: Log,
    log_file: Path | None = None,
    text_instances: int | None = None,
) -> dict[str, Any]:
    """Serve `enc-<variant>` and `enc-<variant>-text`, then time the three paths round by round."""
    repository, model = prepare_repository(checkpoint, variant, plan.shape, text_instances)
    work = rerank_1x100(checkpoint, plan.passages, plan.tokens)
    query, passages = work.pairs[0][0], [p for _, p in work.pairs]
    text_config = parse_config((repository / text_model_name(model) / "config.pbtxt").read_text())
    result: dict[str, Any] = {
        "model": model,
        "variant": variant,
        "shape": plan.shape.name,
        "workload": work.name,
        "text_instances": sum(g.count for g in text_config.instance_group),
        "tokens": work.total_tokens,
        "rounds": {str(c): plan.rounds_for(c) for c in plan.levels},
        "calls_per_worker": {str(c): plan.calls(c) for c in plan.levels},
        "tokenization": tokenization_per_pair(checkpoint, repository, model, work, plan.tokenize_reps),
    }
    log(
        f"text path: tokenization {result['tokenization']['client_us']:.0f} us/pair (client), "
        f"{result['tokenization']['text_model_us']:.0f} us/pair (text model)"
    )
    server = embedded_server(repository, [model, text_model_name(model)], log_file)
    server.start(timeout=600)
    callers: dict[str, list] = {}
    try:
        pid = server.server_pid
        top = max(plan.levels)
        for path in PATHS:
            callers[path] = [make_caller(path, server.grpc_url, model, checkpoint) for _ in range(top)]
        for path in PATHS:  # every connection and every model instance once, on two passages
            run_wave(callers[path], query, passages[:2], 1, pid)
        reference = callers["token"][0](query, passages)
        drift = {}
        for path in TEXT_PATHS:
            got = callers[path][0](query, passages)
            drift[path] = float(np.abs(np.asarray(got) - np.asarray(reference)).max())
        result["max_abs_diff_vs_token"] = drift
        result["levels"] = {}
        for level in plan.levels:
            samples: dict[str, list[Sample]] = {p: [] for p in PATHS}
            rounds = plan.rounds_for(level)
            for r in range(rounds):
                for path in round_order(r):
                    sample, _ = run_wave(callers[path][:level], query, passages, plan.calls(level), pid)
                    samples[path].append(sample)
                    log(
                        f"text path: c={level} round {r + 1}/{rounds} {path}: "
                        f"{sample.pairs / sample.wall_s:.2f} pairs/s"
                    )
            summary = summarize_level(samples)
            result["levels"][str(level)] = summary
            log(
                f"text path: c={level}: "
                + ", ".join(f"{p} {summary[p]['pairs_per_s']:.2f} pairs/s" for p in PATHS)
                + "; text/token "
                + ", ".join(f"{p} {summary[p]['ratio_vs_token']:.3f}" for p in TEXT_PATHS)
            )
    finally:
        for group in callers.values():
            for caller in group:
                caller.close()
        server.stop()
    result["within_target"] = all(
        result["levels"][str(c)][p]["within_target"] for c in plan.levels for p in TEXT_PATHS
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shape and workload (CI smoke test)")
    parser.add_argument(
        "--variant",
        default="int8+t1024",
        help="served graph, as bench.run's --variants (fused, int8, ... plus +t<N>)",
    )
    parser.add_argument("--concurrency", default=None, help="levels, e.g. 1,16 (default: the plan's)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument(
        "--text-instances", type=int, default=None, help="instances of the text model (default: the export's)"
    )
    parser.add_argument("--out", default=None, help="JSON path")
    args = parser.parse_args(argv)
    plan = QUICK_PLAN if args.quick else FULL_PLAN
    if args.concurrency:
        plan = dataclasses.replace(plan, levels=tuple(int(c) for c in args.concurrency.split(",") if c))
    if args.rounds:
        plan = dataclasses.replace(plan, rounds={c: args.rounds for c in plan.levels})
    log = stamped_log
    RESULTS.mkdir(parents=True, exist_ok=True)
    checkpoint = build_encoder_checkpoint(plan.shape)
    result = {
        "machine": machine_info(),
        "load_avg_start": os.getloadavg(),
        **run(checkpoint, plan, args.variant, log, RESULTS / "server-text-path.log.tmp", args.text_instances),
        "load_avg_end": os.getloadavg(),
    }
    out = Path(args.out) if args.out else RESULTS / f"text-path{'-quick' if args.quick else ''}.json"
    write_result(out, result)
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
