"""What every benchmark shares: paths, model shapes and run plans, statistics, machine info, the
FlagEmbedding runner, the served repository, embedded servers and SDK clients.

The CLIs (bench.run, bench.text_path, bench.api_overhead, bench.client_overhead, ...) import from
here; nothing here imports a CLI.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.graphs import build_variant
from bench.workloads import PAD_ID, Workload
from export.__main__ import main as export_main
from export.encoder_export import EncoderExportOptions, write_configs
from reranker_client import RerankerClient
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import text_model_name
from reranker_server.embedded import EmbeddedTritonServer, free_ports
from reranker_server.encoder_scorer import DEFAULT_MAX_BATCH_TOKENS, EncoderScorer
from reranker_server.ort_session import available_cpus

# ----------------------------------------------------------------------------- paths
REPO = Path(__file__).resolve().parents[1]
CACHE = Path(os.environ.get("RERANKER_BENCH_CACHE", REPO / ".cache" / "bench"))
RESULTS = REPO / "bench" / "results"
LOGS = RESULTS / "logs"
FLAG_RUNNER = REPO / "bench" / "flag_runner.py"

Log = Callable[[str], None]


def stamped_log(msg: str) -> None:
    """Print one progress line with the time of day."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- shapes and plans
@dataclass(frozen=True)
class EncoderShape:
    """The dimensions of an XLM-R sequence-classification reranker."""

    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    max_position_embeddings: int

    def matmul_flops_per_token(self, seq_len: int) -> float:
        """Multiply-add FLOPs per token of the encoder stack (projections, MLP, attention)."""
        h, i = self.hidden_size, self.intermediate_size
        per_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * seq_len * h
        return float(self.num_hidden_layers * per_layer)


BASE = EncoderShape("bge-reranker-base-shape", 768, 12, 12, 3072, 250002, 514)
QUICK = EncoderShape("quick-encoder", 64, 2, 4, 128, 1000, 514)
SHAPES = {"quick": QUICK, "base": BASE}


class Plan:
    """Sizes of one `make bench` run (full or --quick)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.shape: EncoderShape = QUICK if quick else BASE
        self.rerank = (20, 64) if quick else (100, 200)  # passages, tokens
        self.mixed = (40, 16, 64) if quick else (500, 16, 256)  # pairs, low, high
        self.latency = (5, 32) if quick else (10, 100)  # passages, tokens per latency call
        self.reps = 1
        self.latency_requests = (lambda c: max(4, 2 * c)) if quick else (lambda c: max(6, 2 * c))


def batch_tokens(variant: str, default: int = DEFAULT_MAX_BATCH_TOKENS) -> int:
    """The runner's max_batch_tokens for a variant name such as "int8+t1024"."""
    for opt in variant.split("+")[1:]:
        if opt.startswith("t") and opt[1:].isdigit():
            return int(opt[1:])
    return default


# ----------------------------------------------------------------------------- statistics
def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, NaN for no values."""
    return float(np.percentile(np.asarray(values), q)) if len(values) else float("nan")


def cpu_ratio(baseline: float, other: float) -> float | None:
    """baseline / other; None when `other` is below the CPU clock's resolution (10 ms ticks: a
    quick run's few pairs can take no measurable server CPU)."""
    return baseline / other if other > 0 else None


def latency_stats(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99 seconds and the count."""
    return {
        "p50_s": percentile(values, 50),
        "p95_s": percentile(values, 95),
        "p99_s": percentile(values, 99),
        "n": len(values),
    }


def throughput(work: Workload, wall: float, cpu: float | None = None, cores: int = 1) -> dict:
    """Pairs and tokens per second of one workload; with CPU seconds also what the run would reach
    with the cores to itself (CPU time / cores)."""
    row = {"wall_s": wall, "pairs_per_s": len(work.pairs) / wall, "tokens_per_s": work.total_tokens / wall}
    if cpu:
        row.update(
            {
                "cpu_s": cpu,
                "pairs_per_s_cpu_norm": len(work.pairs) * cores / cpu,
                "tokens_per_s_cpu_norm": work.total_tokens * cores / cpu,
            }
        )
    return row


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (no ties expected in float scores)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def kendall_tau(ref: np.ndarray, got: np.ndarray) -> float:
    """Kendall's tau-a between two score vectors (1.0: same order)."""
    i, j = np.triu_indices(len(ref), 1)
    return float(np.mean(np.sign(ref[i] - ref[j]) * np.sign(got[i] - got[j]))) if len(i) else 1.0


def top10_agreement(ref: np.ndarray, got: np.ndarray, k: int = 10) -> dict:
    """Overlap of the top-k sets, and whether the top-k order is identical."""
    a, b = np.argsort(-ref)[:k], np.argsort(-got)[:k]
    return {"overlap": len(set(a.tolist()) & set(b.tolist())) / k, "same_order": bool(np.array_equal(a, b))}


def drift(ref: Sequence[float], got: Sequence[float]) -> dict:
    """How far `got` scores are from `ref`: absolute differences and rank agreement."""
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    return {
        "max_abs": float(np.abs(a - b).max()),
        "mean_abs": float(np.abs(a - b).mean()),
        "score_std": float(a.std()),
        "spearman": spearman(a, b),
        "top10": top10_agreement(a, b),
    }


# ----------------------------------------------------------------------------- machine
def machine_info() -> dict:
    """CPU model, usable CPUs, wide-vector ISA flags, versions and the date of a run."""
    model = ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "")
        flags = next(ln for ln in lines if ln.startswith("flags"))
        isa = sorted(f for f in flags.split() if f.startswith(("avx512", "amx", "avx_vnni")))
    except (OSError, StopIteration):
        isa = []
    return {
        "cpu": model,
        "cpus": available_cpus(),
        "isa": isa,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# ----------------------------------------------------------------------------- FlagEmbedding
def oracle_python() -> str:
    """The interpreter of the FlagEmbedding environment (.venv-oracle unless overridden)."""
    return os.environ.get("RERANKER_ORACLE_PYTHON", str(REPO / ".venv-oracle" / "bin" / "python"))


def run_in_oracle_env(script: Path, payload: Any, timeout: float, what: str) -> Any:
    """Run `script` with `payload` (JSON on stdin) in the FlagEmbedding environment, offline; its
    JSON answer. `what` names the run in the error raised when it fails."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": "",
    }
    proc = subprocess.run(
        [oracle_python(), str(script)],
        input=json.dumps(payload),
        text=True,
        capture_output=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def run_flag_runner(job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run bench/flag_runner.py on `job` in the oracle environment, offline; its JSON answer."""
    return run_in_oracle_env(FLAG_RUNNER, job, timeout, f"FlagEmbedding benchmark ({job['kind']})")


# ----------------------------------------------------------------------------- serving
def export_once(checkpoint: Path, repository: Path, name: str, *extra: str) -> Path:
    """`python -m export` of `checkpoint` as `name` unless the repository holds it already."""
    target = repository / name
    if not (target / "reranker.json").exists() or not (repository / text_model_name(name)).exists():
        repository.mkdir(parents=True, exist_ok=True)
        argv = ["--model", str(checkpoint), "--name", name, "--repository", str(repository), "--force"]
        if export_main([*argv, *extra]) != 0:
            raise RuntimeError(f"export of the benchmark model {name} failed")
    return target


def served_repository(ckpt: Path, fp32: Path, variants: list[str], shape: EncoderShape) -> Path:
    """A model repository with one model per variant "<graph>[+t<N>]" (`enc-fp32` with its text model):
    exported once with `python -m export`, then each variant's graph linked in as model.onnx and
    its configs written by the exporter's own writer (+t<N> sets the runner's max_batch_tokens)."""
    repo = CACHE / f"repo-{ckpt.name}"
    base = repo / "enc-fp32"
    if not (base / "1" / "model.onnx").exists():
        shutil.rmtree(base, ignore_errors=True)
    export_once(ckpt, repo, "enc-fp32", "--cpu-graph", "plain")
    for variant in variants:
        target = repo / f"enc-{variant}"
        if variant == "fp32" or (target / "1" / "model.onnx").exists():
            continue
        src = build_variant(fp32, variant.split("+")[0], shape.num_attention_heads, shape.hidden_size)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(
            base, target, ignore=shutil.ignore_patterns("*.pbtxt", "model.onnx*", "reranker.json")
        )
        os.link(src, target / "1" / "model.onnx")
        manifest = dataclasses.replace(
            ModelManifest.load(base), name=target.name, text_model=text_model_name(target.name)
        )
        options = EncoderExportOptions(
            max_batch_size=manifest.max_batch_size, max_batch_tokens=batch_tokens(variant)
        )
        write_configs(target, manifest, options)
        manifest.save(target)
    return repo


def embedded_server(
    repository: os.PathLike | str, models: Sequence[str], log_file: Path | None = None
) -> EmbeddedTritonServer:
    """A server (not started yet) on free loopback ports loading only `models`: other models in
    the repository cannot hold it up."""
    http, grpc, metrics = free_ports(3)
    return EmbeddedTritonServer(
        repository,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        log_file=log_file,
        extra_args=("--model-control-mode=explicit", *(f"--load-model={m}" for m in models)),
    )


def inprocess_scorer(onnx_path: Path, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS) -> EncoderScorer:
    """The served runner's own scorer (session options, re-batching), in this process."""
    return EncoderScorer.from_file(onnx_path, pad_id=PAD_ID, max_batch_tokens=max_batch_tokens)


def sdk_client(
    url: str, model: str, checkpoint: Path, timeout_s: float = 600.0, **kwargs: Any
) -> RerankerClient:
    """RerankerClient over gRPC, tokenizing with the checkpoint's tokenizer unless told otherwise."""
    kwargs.setdefault("tokenizer_path", str(checkpoint))
    return RerankerClient(url, model, "grpc", timeout_s=timeout_s, **kwargs)
