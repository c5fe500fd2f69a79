"""GPU check of the product itself: export with `python -m export`, serve with the product's
server code, score with the product's client.

Run through scripts/gpu_check.sh on a GPU node (it installs carried wheels first), or directly:

    python scripts/gpu_check.py [--device cuda|cpu] [--encoder-checkpoint DIR] [--llm-checkpoint DIR]
                                [--quick] [--out DIR] [--seconds 6] ...

1. Export: the encoder checkpoint at fp32 and fp16 (`--precision`), the LLM checkpoint at each
   `--llm-dtypes` (default float16,bfloat16) plus float32, into one model repository.
2. Serve them on the embedded Triton server (reranker_server.embedded, the tritonserver of the
   nvidia-pytriton wheel: Python backend) with one extra config per model, configs/gpucheck.pbtxt:
   encoder = the exported embedded config (reranker_server.onnx_model) on a KIND_GPU instance with
   ONNX Runtime's `--encoder-providers` (default tensorrt,cuda); LLM = the exported config.pbtxt
   (reranker_server.llm_model, KIND_GPU, as exported). `--device cpu` runs the same pipeline on
   the CPU (KIND_CPU, CPU provider): the smoke run that CI uses to prove the check works.
   Reference models `<name>-ref` serve the exported CPU configs (fp32) from the same files.
3. Score text pairs with reranker_client.RerankerClient: served fp32 vs the CPU reference (on the
   `--reference-pairs` shortest pairs), fp16 / bf16 vs fp32 (|d| <= atol + rtol*|ref|, and every
   two passages of a query whose fp32 scores are clearly apart keep their order), then
   throughput per model (pairs/s, p50/p95 latency).
Results: <out>/gpu_check.json and <out>/tritonserver.log. Exit code 0: every check passed;
1: a check failed; 2: the check could not run; 3: passed, but the encoder could not use the
GPU because this ONNX Runtime has no CUDA/TensorRT provider (said in the report).

Without checkpoints it builds random-weight ones (bge-reranker-base and gemma-2b shapes; tiny
ones with --quick): the figures show the serving path's behaviour and speed, not a real
model's accuracy.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for _sub in ("", "core", "client", "server"):
    if str(REPO / _sub) not in sys.path:
        sys.path.insert(0, str(REPO / _sub))

from export.precision_agreement import agreement  # noqa: E402

CHECK_CONFIG = "gpucheck"
ENCODER_PRECISIONS = ("fp32", "fp16")
LLM_PRECISION = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


@dataclass
class CheckModel:
    """One served model of the check."""

    name: str
    family: str  # encoder | llm
    precision: str  # fp32 | fp16 | bf16
    device: str  # cuda | cpu (the reference models are always cpu)
    tokenizer: Path


# ---- checkpoints and export ------------------------------------------------------------------


def default_checkpoints(work: Path, quick: bool) -> tuple[Path, Path]:
    """Random-weight checkpoints of the benchmark shapes (tiny ones with `quick`)."""
    from bench.common import BASE, QUICK
    from bench.llm_bench import GEMMA_2B, QUICK_GEMMA, build_decoder_checkpoint
    from bench.models import build_encoder_checkpoint

    encoder = build_encoder_checkpoint(QUICK if quick else BASE, work / "encoder-checkpoint")
    llm = build_decoder_checkpoint(QUICK_GEMMA if quick else GEMMA_2B)  # cached in .cache/bench
    return encoder, llm


def trained_checkpoints() -> tuple[Path, Path]:
    """The tiny XLM-R and Gemma rerankers trained on the synthetic relevance task
    (export/tiny/trained.py, cached): scores that mean something, for rank-agreement figures."""
    from export.tiny.trained import trained_encoder_checkpoint, trained_gemma_checkpoint

    return trained_encoder_checkpoint(), trained_gemma_checkpoint()


def export(args: list[str]) -> None:
    """`python -m export` in this process; raises when it fails."""
    from export.__main__ import main as export_main

    code = export_main(args)
    if code != 0:
        raise RuntimeError(f"python -m export {' '.join(args)} failed with exit code {code}")


def export_models(
    repo: Path, encoder: Path | None, llm: Path | None, llm_dtypes: Sequence[str], gpus: Sequence[int]
) -> dict[str, Path]:
    """Export every model of the check; {served name: model directory}."""
    gpu_arg = ["--gpus", ",".join(str(g) for g in gpus)] if gpus else []
    dirs: dict[str, Path] = {}
    if encoder is not None:
        for precision in ENCODER_PRECISIONS:
            name = f"enc-{precision}"
            export(
                [
                    "--model",
                    str(encoder),
                    "--name",
                    name,
                    "--repository",
                    str(repo),
                    "--force",
                    "--precision",
                    precision,
                    *(["--cpu-graph", "plain"] if precision != "fp32" else []),
                    *gpu_arg,
                ]
            )
            dirs[name] = repo / name
    if llm is not None:
        for dtype in dict.fromkeys(["float32", *llm_dtypes]):
            name = f"llm-{LLM_PRECISION[dtype]}"
            export(
                [
                    "--model",
                    str(llm),
                    "--name",
                    name,
                    "--repository",
                    str(repo),
                    "--force",
                    "--dtype",
                    dtype,
                    *gpu_arg,
                ]
            )
            dirs[name] = repo / name
    return dirs


# ---- the check's configs ---------------------------------------------------------------------


def read_config(path: Path):
    """A config.pbtxt file as a ModelConfig message."""
    from export.config_check import parse_config

    return parse_config(path.read_text())


def write_config(config, path: Path) -> Path:
    from google.protobuf import text_format

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text_format.MessageToString(config))
    return path


def served_check_config(
    model_dir: Path, family: str, device: str, gpus: Sequence[int], encoder_providers: str, instances: int = 1
):
    """The served config of a check model: the exported one, on `device`."""
    from tritonclient.grpc import model_config_pb2

    if family == "encoder":
        config = read_config(model_dir / "configs" / "embedded.pbtxt")
        config.parameters["onnx_file"].string_value = "model.onnx"  # the portable graph (fp16 too)
        config.parameters["execution_providers"].string_value = (
            encoder_providers if device == "cuda" else "cpu"
        )
    else:
        config = read_config(model_dir / "config.pbtxt")
    del config.instance_group[:]
    group = config.instance_group.add()
    group.count = instances
    if device == "cuda":
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_GPU
        group.gpus.extend(gpus)
    else:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
    return config


def add_reference(repo: Path, source: str, name: str) -> Path:
    """`<name>`: the exported CPU config (fp32) of `source`, served from the same files."""
    src, dst = repo / source, repo / name
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir()
    for entry in ("1", "tokenizer", "reranker.json"):
        if (src / entry).exists():
            (dst / entry).symlink_to(src / entry)
    config = read_config(src / "configs" / "embedded.pbtxt")
    config.name = name
    write_config(config, dst / "configs" / f"{CHECK_CONFIG}.pbtxt")
    return dst


def prepare_repository(
    repo: Path,
    dirs: dict[str, Path],
    device: str,
    gpus: Sequence[int],
    encoder_providers: str,
    instances: int,
) -> list[CheckModel]:
    models = []
    for name, model_dir in dirs.items():
        family = "encoder" if name.startswith("enc-") else "llm"
        write_config(
            served_check_config(model_dir, family, device, gpus, encoder_providers, instances),
            model_dir / "configs" / f"{CHECK_CONFIG}.pbtxt",
        )
        models.append(CheckModel(name, family, name.split("-", 1)[1], device, model_dir / "tokenizer"))
    for family, fp32 in (("encoder", "enc-fp32"), ("llm", "llm-fp32")):
        if fp32 in dirs:
            ref = add_reference(repo, fp32, f"{fp32}-ref")
            models.append(CheckModel(ref.name, family, "fp32", "cpu", ref / "tokenizer"))
    return models


# ---- text pairs ------------------------------------------------------------------------------

WORDS = (
    "panda bear bamboo forest china mountain river city music history science water fire "
    "computer language model search query passage answer question energy light planet ocean "
    "animal plant food market travel health school paper book story garden winter summer"
).split()


def relevance_pairs(queries: int, passages: int, seed: int = 5000) -> tuple[list[list[str]], list[int]]:
    """Held-out pairs of the trained checkpoints' relevance task, grouped by query."""
    from export.tiny.relevance_task import evaluation_set

    evaluation = evaluation_set(seed, queries, passages)
    pairs = [list(p) for q in evaluation for p in q.pairs()]
    return pairs, [i for i, q in enumerate(evaluation) for _ in q.passages]


def text_pairs(
    queries: int, passages: int, max_words: int, seed: int = 1
) -> tuple[list[list[str]], list[int]]:
    """Random word pairs grouped by query (for rank agreement); passage lengths up to max_words."""
    rng = np.random.default_rng(seed)
    lengths = [n for n in (4, 12, 32, 64, 128, 256, 512, 1024) if n <= max_words] or [max_words]
    pairs, groups = [], []
    for q in range(queries):
        query = " ".join(rng.choice(WORDS, size=int(rng.integers(2, 8))))
        for _ in range(passages):
            passage = " ".join(rng.choice(WORDS, size=int(rng.choice(lengths))))
            pairs.append([query, passage])
            groups.append(q)
    return pairs, groups


# ---- parity ----------------------------------------------------------------------------------


@dataclass
class Parity:
    """Scores of one model against a reference: tolerance, order of clearly separated pairs."""

    name: str
    max_abs: float
    mean_abs: float
    within_tolerance: bool
    order_violations: int
    separated_pairs: int
    min_kendall_tau: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)


def compare(
    name: str, ref: np.ndarray, got: np.ndarray, groups: Sequence[int], *, atol: float, rtol: float
) -> Parity:
    from bench.common import kendall_tau

    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(ref))):
        bad = int(np.count_nonzero(~np.isfinite(got)) + np.count_nonzero(~np.isfinite(ref)))
        return Parity(
            name,
            float("inf"),
            float("inf"),
            False,
            0,
            0,
            float("nan"),
            False,
            {"non_finite_scores": bad, "atol": atol, "rtol": rtol},
        )
    diff = np.abs(got - ref)
    band = atol + rtol * np.abs(ref)
    within = bool(np.all(diff <= band))
    violations = separated = 0
    taus = []
    groups_arr = np.asarray(groups)
    for g in sorted(set(groups)):
        idx = np.flatnonzero(groups_arr == g)
        if len(idx) < 2:
            continue
        taus.append(kendall_tau(ref[idx], got[idx]))
        i, j = (idx[k] for k in np.triu_indices(len(idx), 1))
        apart = np.abs(ref[i] - ref[j]) > band[i] + band[j]
        separated += int(apart.sum())
        violations += int((np.sign(ref[i] - ref[j]) != np.sign(got[i] - got[j]))[apart].sum())
    worst = int(np.argmax(diff)) if len(diff) else 0
    return Parity(
        name,
        float(diff.max(initial=0.0)),
        float(diff.mean()) if len(diff) else 0.0,
        within,
        violations,
        separated,
        float(min(taus)) if taus else 1.0,
        within and violations == 0,
        {
            "atol": atol,
            "rtol": rtol,
            "worst_index": worst,
            "worst_ref": float(ref[worst]) if len(ref) else 0.0,
            "worst_got": float(got[worst]) if len(got) else 0.0,
        },
    )


# ---- scoring with the product's client -------------------------------------------------------


def client_for(url: str, model: CheckModel, timeout_s: float = 600.0):
    from reranker_client import RerankerClient

    return RerankerClient(url, model.name, "grpc", tokenizer_path=str(model.tokenizer), timeout_s=timeout_s)


def score(url: str, model: CheckModel, pairs: list[list[str]], max_length: int) -> np.ndarray:
    with client_for(url, model) as client:
        return np.asarray(client.compute_score(pairs, max_length=max_length), dtype=np.float32)


def throughput(
    url: str, model: CheckModel, pairs: list[list[str]], *, concurrency: int, seconds: float, max_length: int
) -> dict[str, Any]:
    """`concurrency` threads, each with its own client, calling compute_score(pairs) for `seconds`."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = [0.0]
    gate = threading.Barrier(
        concurrency + 1, action=lambda: deadline.__setitem__(0, time.perf_counter() + seconds)
    )

    def worker() -> None:
        try:
            with client_for(url, model) as client:
                client.compute_score(pairs, max_length=max_length)  # warm: connection, kernels
                gate.wait()
                mine = []
                while time.perf_counter() < deadline[0]:
                    t0 = time.perf_counter()
                    client.compute_score(pairs, max_length=max_length)
                    mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
        except Exception as exc:  # noqa: BLE001 - reported, so the other workers finish
            with lock:
                errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
            gate.abort()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        gate.wait()
    except threading.BrokenBarrierError:
        pass
    start = deadline[0] - seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lat = np.asarray(sorted(latencies)) * 1000.0
    return {
        "model": model.name,
        "precision": model.precision,
        "pairs_per_call": len(pairs),
        "concurrency": concurrency,
        "calls": len(lat),
        "seconds": round(elapsed, 2),
        "pairs_per_s": round(len(lat) * len(pairs) / elapsed, 1) if len(lat) and elapsed > 0 else 0.0,
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
        "errors": errors,
    }


# ---- the run ---------------------------------------------------------------------------------


def environment_report() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        import onnxruntime as ort

        info.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except ImportError as exc:
        info["onnxruntime_error"] = str(exc)
    try:
        import torch

        info.update(torch=torch.__version__, cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError as exc:
        info["torch_error"] = str(exc)
    return info


def encoder_gpu_providers(requested: str, available: Sequence[str]) -> tuple[str, str | None]:
    """The requested providers this ONNX Runtime has, or ("", reason) when it has none of them."""
    from reranker_server.ort_session import EXECUTION_PROVIDERS

    names = [n.strip() for n in requested.split(",") if n.strip() and n.strip() != "cpu"]
    usable = [n for n in names if EXECUTION_PROVIDERS.get(n) in available]
    if usable:
        return ",".join(usable), None
    return "", (
        f"this ONNX Runtime has none of {names} (it has {', '.join(available)}): the encoder "
        "was not checked on the GPU; install onnxruntime-gpu"
    )


def run(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"environment": environment_report(), "args": vars(args)}
    print(json.dumps(report["environment"]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    t_start = time.perf_counter()
    code = 2
    try:
        encoder_ckpt = Path(args.encoder_checkpoint).resolve() if args.encoder_checkpoint else None
        llm_ckpt = Path(args.llm_checkpoint).resolve() if args.llm_checkpoint else None
        if args.trained:
            encoder_ckpt, llm_ckpt = trained_checkpoints()
            print(f"trained tiny checkpoints in {time.perf_counter() - t_start:.1f}s", flush=True)
        elif not (encoder_ckpt or llm_ckpt):
            encoder_ckpt, llm_ckpt = default_checkpoints(work, args.quick)
            print(f"built random checkpoints in {time.perf_counter() - t_start:.1f}s", flush=True)
        providers = "cpu"
        if encoder_ckpt is not None and args.device == "cuda":
            providers, missing = encoder_gpu_providers(
                args.encoder_providers, report["environment"].get("ort_providers", [])
            )
            if missing:
                report["encoder_gpu"] = missing
                print(f"WARNING: {missing}", flush=True)
                encoder_ckpt = None
        repo = work / "repository"
        t0 = time.perf_counter()
        dirs = export_models(
            repo,
            encoder_ckpt,
            llm_ckpt,
            args.llm_dtypes.split(","),
            args.gpus if args.device == "cuda" else [],
        )
        report["export_s"] = round(time.perf_counter() - t0, 1)
        models = prepare_repository(repo, dirs, args.device, args.gpus, providers, args.instances)
        report["models"] = [{k: str(v) for k, v in m.__dict__.items()} for m in models]
        from reranker_server.embedded import EmbeddedTritonServer

        server = EmbeddedTritonServer(
            repo,
            http_port=args.ports[0],
            grpc_port=args.ports[1],
            metrics_port=args.ports[2],
            config_name=CHECK_CONFIG,
            log_file=out / "tritonserver.log",
        )
        t0 = time.perf_counter()
        try:
            server.start(timeout=args.start_timeout)
        except Exception as exc:  # noqa: BLE001 - reported with the log's tail
            report["status"] = f"server did not start: {exc}"
            print(report["status"], flush=True)
            return 2
        report["server_ready_s"] = round(time.perf_counter() - t0, 1)
        print(f"tritonserver ready in {report['server_ready_s']}s", flush=True)
        try:
            code = checks(args, report, server.grpc_url, models)
        finally:
            server.stop()
        if code == 0 and "encoder_gpu" in report:
            code = 3
        return code
    finally:
        report["total_s"] = round(time.perf_counter() - t_start, 1)
        report["exit_code"] = code
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        print(f"report: {out / 'gpu_check.json'}", flush=True)


def checks(args: argparse.Namespace, report: dict[str, Any], url: str, models: list[CheckModel]) -> int:
    if args.trained:
        pairs, groups = relevance_pairs(args.queries, args.passages)
    else:
        pairs, groups = text_pairs(args.queries, args.passages, args.max_words)
    tolerances = {"fp16": (args.fp16_atol, args.fp16_rtol), "bf16": (args.bf16_atol, args.bf16_rtol)}
    results: list[Parity] = []
    # the CPU references score the shortest pairs only (an LLM's fp32 CPU pass is slow)
    few = sorted(range(len(pairs)), key=lambda i: len(pairs[i][1]))[: args.reference_pairs]
    t0 = time.perf_counter()
    scores = {
        m.name: score(url, m, [pairs[i] for i in few] if m.name.endswith("-ref") else pairs, args.max_length)
        for m in models
    }
    report["parity_scoring_s"] = round(time.perf_counter() - t0, 1)
    for family, prefix in (("encoder", "enc"), ("llm", "llm")):
        fp32 = f"{prefix}-fp32"
        if fp32 not in scores:
            continue
        report[f"score_range_{prefix}_fp32"] = [float(scores[fp32].min()), float(scores[fp32].max())]
        # served fp32 against the exported CPU graph/model (another device and kernels)
        results.append(
            compare(
                f"{fp32}-vs-cpu-reference",
                scores[f"{fp32}-ref"],
                scores[fp32][few],
                [groups[i] for i in few],
                atol=args.fp32_atol,
                rtol=args.fp32_atol,
            )
        )
        for m in models:
            if m.family == family and m.precision in tolerances and not m.name.endswith("-ref"):
                atol, rtol = tolerances[m.precision]
                results.append(
                    compare(f"{m.name}-vs-fp32", scores[fp32], scores[m.name], groups, atol=atol, rtol=rtol)
                )
                if args.trained:  # spread-relative figures (export/precision_agreement.py)
                    a = agreement(scores[fp32], scores[m.name], groups)
                    report.setdefault("agreement", {})[m.name] = {**a.to_dict(), "meets": a.meets_targets()}
                    print(f"agreement {m.name} vs fp32: {a.summary()}", flush=True)
    report["parity"] = [r.__dict__ for r in results]
    for r in results:
        print(
            f"{'PASS' if r.passed else 'FAIL'} {r.name}: max|d|={r.max_abs:.3g} mean|d|={r.mean_abs:.3g} "
            f"order violations {r.order_violations}/{r.separated_pairs} tau_min={r.min_kendall_tau:.3f}",
            flush=True,
        )
    report["throughput"] = []
    batch = pairs[: args.batch]
    for m in models:
        if m.name.endswith("-ref"):
            continue
        row = throughput(
            url, m, batch, concurrency=args.concurrency, seconds=args.seconds, max_length=args.max_length
        )
        report["throughput"].append(row)
        print(
            f"throughput {m.name}: {row['pairs_per_s']} pairs/s, p50 {row['latency_ms_p50']} ms, "
            f"p95 {row['latency_ms_p95']} ms ({row['pairs_per_call']} pairs per call, concurrency "
            f"{row['concurrency']})" + (f" errors {row['errors'][:1]}" if row["errors"] else ""),
            flush=True,
        )
    failed = [r.name for r in results if not r.passed]
    failed += [f"throughput {r['model']}" for r in report["throughput"] if r["errors"] or not r["calls"]]
    report["status"] = "FAIL: " + ", ".join(failed) if failed else "PASS"
    print(report["status"], flush=True)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--encoder-checkpoint", help="XLM-R reranker checkpoint dir (default: random weights)")
    p.add_argument("--llm-checkpoint", help="decoder reranker checkpoint dir (default: random weights)")
    p.add_argument("--quick", action="store_true", help="tiny random checkpoints and short runs")
    p.add_argument(
        "--trained",
        action="store_true",
        help="the trained tiny checkpoints (export/tiny/trained.py) and their held-out relevance "
        "pairs: rank agreement of fp16/bf16 on scores that mean something",
    )
    p.add_argument("--out", default="gpu-check-out")
    p.add_argument(
        "--device",
        choices=["cuda", "cpu"],
        default="cuda",
        help="cpu: the same pipeline on the CPU (smoke run, no GPU needed)",
    )
    p.add_argument(
        "--encoder-providers",
        default="tensorrt,cuda",
        help="ONNX Runtime providers of the encoder on the GPU (reranker_server.onnx_model)",
    )
    p.add_argument("--llm-dtypes", default="float16,bfloat16")
    p.add_argument("--gpus", type=int, nargs="+", default=[0])
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--queries", type=int, default=8)
    p.add_argument("--passages", type=int, default=16)
    p.add_argument("--max-words", type=int, default=1024)
    p.add_argument("--max-length", type=int, default=512, help="compute_score max_length")
    p.add_argument(
        "--reference-pairs", type=int, default=12, help="shortest pairs scored by the CPU references"
    )
    p.add_argument("--fp32-atol", type=float, default=1e-3)
    p.add_argument("--fp16-atol", type=float, default=2e-2)
    p.add_argument("--fp16-rtol", type=float, default=1e-2)
    p.add_argument("--bf16-atol", type=float, default=1e-1)
    p.add_argument("--bf16-rtol", type=float, default=5e-2)
    p.add_argument("--batch", type=int, default=32, help="pairs per compute_score call (throughput)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--ports", type=int, nargs=3, default=[18000, 18001, 18002])
    p.add_argument("--start-timeout", type=float, default=600.0)
    args = p.parse_args(argv)
    if args.quick:
        args.queries, args.passages = min(args.queries, 3), min(args.passages, 5)
        args.max_words, args.max_length = min(args.max_words, 64), min(args.max_length, 128)
        args.batch, args.concurrency, args.seconds = (
            min(args.batch, 4),
            min(args.concurrency, 2),
            min(args.seconds, 1.0),
        )
    bad = [d for d in args.llm_dtypes.split(",") if d not in LLM_PRECISION]
    if bad:
        p.error(f"--llm-dtypes: {bad} not in {', '.join(LLM_PRECISION)}")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
