"""GPU deployment check: serve an XLM-R reranker from GPU Python-backend models in fp32, fp16 and
bf16 on the bundled tritonserver, check parity and measure throughput.

Run through scripts/gpu_check.sh (which installs carried wheels and the Triton bundle first):

    scripts/gpu_check.sh [--checkpoint DIR] [--out DIR] [--seconds 6] ...

What it checks (exit code 1 when any check fails, 2 when it could not run):
  1. the served fp32 model matches an in-process fp32 CPU reference on short pairs (atol);
  2. padding invariance: pairs scored alone and inside padded batches agree (fp32, atol);
  3. fp16 and bf16 against fp32 on every parity pair (lengths up to the model's max, 8192 for
     v2-m3 shapes): |d| <= atol + rtol*|ref|, and every two passages of a query whose fp32
     scores differ by more than the tolerance band keep their order (Kendall tau reported);
  4. throughput per precision (pairs/s, latency p50/p95) at a few lengths, concurrency N.
Results: <out>/gpu_check.json, server log <out>/tritonserver.log.

Without --checkpoint it builds a random XLM-R sequence classifier with bge-reranker-base's
shapes (12 layers, hidden 768) and v2-m3's 8192-token positions: the numbers show the serving
path's behaviour and speed, not a real checkpoint's accuracy.

This module is also the check's Python-backend model: each model directory's 1/model.py imports
`TritonPythonModel` from here (stdlib and numpy only at import time).
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def hide_scipy_under_numpy1() -> None:
    """Make transformers skip scipy/scikit-learn in this process when numpy is 1.x.

    The check never needs them, but transformers imports them when installed; on an image whose
    scipy needs numpy 2 they fail under the numpy<2 that the bundled stub needs. A None entry
    makes importlib.util.find_spec report them absent. Called by the check's own processes only.
    """
    if int(np.__version__.split(".")[0]) < 2:
        for name in ("sklearn", "scipy"):
            if name not in sys.modules:
                sys.modules[name] = None  # type: ignore[assignment]
TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
CLS_ID, PAD_ID, EOS_ID = 0, 1, 2


# ---- the Python-backend model (runs inside tritonserver's stub) --------------------------------

class TritonPythonModel:
    """Scores input_ids/attention_mask [B, L] with a transformers sequence classifier on a GPU."""

    def initialize(self, args: dict[str, Any]) -> None:
        hide_scipy_under_numpy1()
        import torch
        import triton_python_backend_utils as pb_utils
        from transformers import AutoModelForSequenceClassification

        self.pb, self.torch = pb_utils, torch
        config = json.loads(args["model_config"])
        params = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        if params.get("device") == "cpu":
            self.device = torch.device("cpu")
        elif args.get("model_instance_kind") == "GPU":
            self.device = torch.device("cuda", int(args["model_instance_device_id"]))
        else:  # KIND_CPU instance that still runs on a GPU (fallback when KIND_GPU is refused)
            self.device = torch.device("cuda", int(params.get("cuda_device", "0")))
        dtype = getattr(torch, TORCH_DTYPES[params["precision"]])
        self.model = AutoModelForSequenceClassification.from_pretrained(
            params["checkpoint"], dtype=dtype, attn_implementation="sdpa").to(self.device).eval()
        self.max_length = int(params["max_length"])
        print(f"gpu_check model {config['name']}: numpy {np.__version__} torch {torch.__version__} "
              f"on {self.device} ({args.get('model_instance_kind')}) {params['precision']}", flush=True)

    def _bad(self, message: str):
        return self.pb.InferenceResponse(error=self.pb.TritonError(message))

    def execute(self, requests: list) -> list:
        pb, torch = self.pb, self.torch
        responses: list = [None] * len(requests)
        groups: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for i, request in enumerate(requests):
            ids_t = pb.get_input_tensor_by_name(request, "input_ids")
            mask_t = pb.get_input_tensor_by_name(request, "attention_mask")
            if ids_t is None or mask_t is None:
                responses[i] = self._bad("input_ids and attention_mask are required")
                continue
            ids, mask = ids_t.as_numpy(), mask_t.as_numpy()
            if ids.ndim != 2 or ids.shape != mask.shape:
                responses[i] = self._bad(f"input_ids {ids.shape} and attention_mask {mask.shape} "
                                         f"must be equal [batch, length] shapes")
            elif not 1 <= ids.shape[1] <= self.max_length:
                responses[i] = self._bad(f"length {ids.shape[1]} outside 1..{self.max_length}")
            else:
                groups.setdefault(ids.shape[1], []).append((i, ids, mask))
        for items in groups.values():
            ids = torch.from_numpy(np.concatenate([x[1] for x in items])).to(self.device)
            mask = torch.from_numpy(np.concatenate([x[2] for x in items])).to(self.device)
            try:
                with torch.inference_mode():
                    logits = self.model(input_ids=ids, attention_mask=mask).logits
                scores = logits.float().reshape(-1, 1).cpu().numpy()
            except Exception as exc:  # noqa: BLE001 - one bad batch must not kill the server
                for i, _, _ in items:
                    responses[i] = self._bad(f"inference failed: {exc}")
                continue
            start = 0
            for i, batch_ids, _ in items:
                stop = start + batch_ids.shape[0]
                responses[i] = pb.InferenceResponse(
                    output_tensors=[pb.Tensor("scores", np.ascontiguousarray(scores[start:stop]))])
                start = stop
        return responses


# ---- building the check's model repository ------------------------------------------------------

def python_model_config(name: str, *, checkpoint: Path, precision: str, max_batch_size: int,
                        max_length: int, kind: str = "KIND_GPU", gpus: Sequence[int] = (0,),
                        instances: int = 1, device: str = "cuda", queue_delay_us: int = 1000) -> str:
    """config.pbtxt of one check model (Python backend, GPU instances)."""
    if precision not in TORCH_DTYPES:
        raise ValueError(f"precision {precision!r}: one of {', '.join(TORCH_DTYPES)}")
    gpu_line = f"\n    gpus: [ {', '.join(str(g) for g in gpus)} ]" if kind == "KIND_GPU" and gpus else ""
    params = {"checkpoint": str(checkpoint), "precision": precision, "device": device,
              "max_length": str(max_length), "cuda_device": str(gpus[0] if gpus else 0)}
    param_lines = ",\n".join(f'  {{ key: "{k}" value: {{ string_value: {json.dumps(v)} }} }}'
                             for k, v in params.items())
    return f"""name: "{name}"
backend: "python"
max_batch_size: {max_batch_size}
input [
  {{ name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] }},
  {{ name: "attention_mask" data_type: TYPE_INT64 dims: [ -1 ] }}
]
output [ {{ name: "scores" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [
  {{
    count: {instances}
    kind: {kind}{gpu_line}
  }}
]
dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}
parameters [
{param_lines}
]
"""


def model_py() -> str:
    return (f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
            "from gpu_check import TritonPythonModel  # noqa: E402,F401\n")


def write_repository(root: Path, checkpoint: Path, precisions: Sequence[str], **config: Any) -> dict[str, str]:
    """One model per precision: {precision: model name}."""
    names = {}
    for precision in precisions:
        name = f"gpucheck_{precision}"
        (root / name / "1").mkdir(parents=True, exist_ok=True)
        (root / name / "config.pbtxt").write_text(
            python_model_config(name, checkpoint=checkpoint, precision=precision, **config))
        (root / name / "1" / "model.py").write_text(model_py())
        names[precision] = name
    return names


def build_random_checkpoint(out: Path, *, layers: int = 12, hidden: int = 768, heads: int = 12,
                            intermediate: int = 3072, max_positions: int = 8192,
                            vocab_size: int = 8192, seed: int = 0, score_scale: float = 20.0) -> Path:
    """A random XLMRobertaForSequenceClassification (num_labels=1) with BGE-like shapes.

    transformers' default init, with the final projection scaled so scores spread over a few
    units as real reranker logits do (else every score sits near 0 and ranks mean nothing).
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    torch.manual_seed(seed)
    config = XLMRobertaConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=intermediate,
        max_position_embeddings=max_positions + 2, type_vocab_size=1, num_labels=1,
        pad_token_id=PAD_ID, bos_token_id=CLS_ID, eos_token_id=EOS_ID)
    model = XLMRobertaForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.out_proj.weight.mul_(score_scale)
    model.save_pretrained(out, safe_serialization=True)
    return out


# ---- inputs ---------------------------------------------------------------------------------------

@dataclass
class ParitySet:
    """Random pairs grouped by query (for rank agreement) with their unpadded token ids."""
    sequences: list[np.ndarray]
    query_of: list[int]


def make_parity_set(vocab_size: int, max_length: int, *, queries: int = 8, passages: int = 16,
                    long_lengths: Sequence[int] = (2048, 8192), seed: int = 1) -> ParitySet:
    rng = np.random.default_rng(seed)
    short = [n for n in (12, 24, 48, 96, 160, 256, 384, 512) if n <= max_length]
    sequences, query_of = [], []
    for q in range(queries):
        query = rng.integers(3, vocab_size, size=int(rng.integers(4, 16)))
        for _ in range(passages):
            length = int(rng.choice(short))
            body = rng.integers(3, vocab_size, size=max(1, length - len(query) - 3))
            seq = np.concatenate([[CLS_ID], query, [EOS_ID, EOS_ID], body])[:length - 1]
            sequences.append(np.concatenate([seq, [EOS_ID]]).astype(np.int64))
            query_of.append(q)
    for i, length in enumerate(n for n in long_lengths if n <= max_length):
        body = rng.integers(3, vocab_size, size=length - 2)
        sequences.append(np.concatenate([[CLS_ID], body, [EOS_ID]]).astype(np.int64))
        query_of.append(queries + i)
    return ParitySet(sequences, query_of)


def pad_batch(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    length = max(len(s) for s in seqs)
    ids = np.full((len(seqs), length), PAD_ID, dtype=np.int64)
    mask = np.zeros((len(seqs), length), dtype=np.int64)
    for row, s in enumerate(seqs):
        ids[row, :len(s)] = s
        mask[row, :len(s)] = 1
    return ids, mask


def length_batches(seqs: Sequence[np.ndarray], max_batch: int, max_tokens: int = 65536) -> list[list[int]]:
    """Indices sorted by length, cut into batches of at most max_batch rows and max_tokens."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = max([len(seqs[j]) for j in current] + [len(seqs[i])])
        if current and (len(current) + 1 > max_batch or longest * (len(current) + 1) > max_tokens):
            batches.append(current)
            current = []
        current.append(i)
    return batches + ([current] if current else [])


# ---- a dependency-free KServe v2 HTTP client (binary tensor extension) ---------------------------

class HttpInfer:
    """One keep-alive HTTP connection to Triton; infer() sends INT64 ids/mask as binary data."""

    def __init__(self, url: str, timeout: float = 300.0) -> None:
        host, _, port = url.partition(":")
        self.conn = http.client.HTTPConnection(host, int(port or 8000), timeout=timeout)

    def infer(self, model: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(ids, dtype="<i8")
        mask = np.ascontiguousarray(mask, dtype="<i8")
        header = json.dumps({
            "inputs": [{"name": n, "shape": list(a.shape), "datatype": "INT64",
                        "parameters": {"binary_data_size": a.nbytes}}
                       for n, a in (("input_ids", ids), ("attention_mask", mask))],
            "outputs": [{"name": "scores", "parameters": {"binary_data": True}}],
        }).encode()
        self.conn.request("POST", f"/v2/models/{model}/infer", body=header + ids.tobytes() + mask.tobytes(),
                          headers={"Inference-Header-Content-Length": str(len(header)),
                                   "Content-Type": "application/octet-stream"})
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{model}: HTTP {response.status}: {data[:500]!r}")
        hlen = int(response.getheader("Inference-Header-Content-Length") or len(data))
        out = json.loads(data[:hlen])["outputs"][0]
        size = out.get("parameters", {}).get("binary_data_size")
        values = (np.frombuffer(data[hlen:hlen + size], dtype="<f4") if size is not None
                  else np.asarray(out["data"], dtype=np.float32))
        return values.reshape(out["shape"])

    def close(self) -> None:
        self.conn.close()


def score_all(client: HttpInfer, model: str, seqs: Sequence[np.ndarray], max_batch: int) -> np.ndarray:
    scores = np.zeros(len(seqs), dtype=np.float32)
    for batch in length_batches(seqs, max_batch):
        ids, mask = pad_batch([seqs[i] for i in batch])
        scores[batch] = client.infer(model, ids, mask)[:, 0]
    return scores


# ---- parity ---------------------------------------------------------------------------------------

def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    n, s = len(a), 0
    for i in range(n):
        for j in range(i + 1, n):
            s += int(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))
    pairs = n * (n - 1) / 2
    return s / pairs if pairs else 1.0


@dataclass
class Parity:
    """Low-precision scores against fp32 ones: tolerance, order of clearly separated pairs."""
    name: str
    max_abs: float
    mean_abs: float
    within_tolerance: bool
    order_violations: int
    separated_pairs: int
    min_kendall_tau: float
    passed: bool
    details: dict[str, Any] = field(default_factory=dict)


def compare(name: str, ref: np.ndarray, got: np.ndarray, groups: Sequence[int], *,
            atol: float, rtol: float) -> Parity:
    if not (np.all(np.isfinite(got)) and np.all(np.isfinite(ref))):
        bad = int(np.count_nonzero(~np.isfinite(got)) + np.count_nonzero(~np.isfinite(ref)))
        return Parity(name=name, max_abs=float("inf"), mean_abs=float("inf"), within_tolerance=False,
                      order_violations=0, separated_pairs=0, min_kendall_tau=float("nan"),
                      passed=False, details={"non_finite_scores": bad, "atol": atol, "rtol": rtol})
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
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
        for x in range(len(idx)):
            for y in range(x + 1, len(idx)):
                i, j = idx[x], idx[y]
                if abs(float(ref[i]) - float(ref[j])) > band[i] + band[j]:
                    separated += 1
                    if np.sign(ref[i] - ref[j]) != np.sign(got[i] - got[j]):
                        violations += 1
    worst = int(np.argmax(diff)) if len(diff) else 0
    return Parity(name=name, max_abs=float(diff.max(initial=0.0)), mean_abs=float(diff.mean()) if len(diff) else 0.0,
                  within_tolerance=within, order_violations=violations, separated_pairs=separated,
                  min_kendall_tau=float(min(taus)) if taus else 1.0,
                  passed=within and violations == 0,
                  details={"atol": atol, "rtol": rtol, "worst_index": worst,
                           "worst_ref": float(ref[worst]) if len(ref) else 0.0,
                           "worst_got": float(got[worst]) if len(got) else 0.0})


def cpu_reference(checkpoint: Path, seqs: Sequence[np.ndarray]) -> np.ndarray:
    """fp32 scores computed in this process on the CPU, one unpadded sequence at a time."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, dtype=torch.float32, attn_implementation="eager").eval()
    out = []
    with torch.inference_mode():
        for s in seqs:
            ids = torch.from_numpy(s[None, :])
            out.append(float(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, 0]))
    return np.asarray(out, dtype=np.float32)


# ---- throughput -----------------------------------------------------------------------------------

def throughput(url: str, model: str, *, length: int, batch: int, concurrency: int,
               seconds: float, vocab_size: int) -> dict[str, Any]:
    rng = np.random.default_rng(length)
    ids = rng.integers(3, vocab_size, size=(batch, length)).astype(np.int64)
    ids[:, 0], ids[:, -1] = CLS_ID, EOS_ID
    mask = np.ones_like(ids)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = [0.0]
    active = [0]
    # The barrier's action sets the deadline before any thread is released (a thread that read
    # an unset deadline would stop at once and silently lower the concurrency).
    start_gate = threading.Barrier(concurrency + 1,
                                   action=lambda: deadline.__setitem__(0, time.perf_counter() + seconds))

    def worker() -> None:
        client = HttpInfer(url)
        try:
            client.infer(model, ids, mask)  # warm the connection and the kernels for this shape
            start_gate.wait()
            mine = []
            while time.perf_counter() < deadline[0]:
                t0 = time.perf_counter()
                client.infer(model, ids, mask)
                mine.append(time.perf_counter() - t0)
            with lock:
                latencies.extend(mine)
                active[0] += bool(mine)
        except Exception as exc:  # noqa: BLE001 - reported, not raised, so the others finish
            with lock:
                errors.append(str(exc)[:300])
            try:
                start_gate.abort()
            except threading.BrokenBarrierError:
                pass
        finally:
            client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    try:
        start_gate.wait()
    except threading.BrokenBarrierError:
        pass
    t0 = deadline[0] - seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    lat = np.asarray(sorted(latencies)) * 1000.0
    return {"model": model, "length": length, "batch": batch, "concurrency": concurrency,
            "requests": len(lat), "active_clients": active[0], "seconds": round(elapsed, 2),
            "pairs_per_s": round(len(lat) * batch / elapsed, 1) if elapsed > 0 else 0.0,
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
            "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
            "errors": errors}


# ---- the run --------------------------------------------------------------------------------------

def start_server(repository: Path, log: Path, ports: tuple[int, int, int], timeout: float):
    sys.path[:0] = [str(REPO / "server"), str(REPO / "client")]
    from reranker_server.embedded import EmbeddedTritonServer

    server = EmbeddedTritonServer(repository, http_port=ports[0], grpc_port=ports[1],
                                  metrics_port=ports[2], config_name=None, log_file=log)
    return server.start(timeout=timeout)


def probe(url: str, names: dict[str, str], vocab: int) -> None:
    """One small request per model; raises when a model answers with a wrong-shaped output."""
    client = HttpInfer(url)
    try:
        ids, mask = pad_batch([np.array([CLS_ID, 5 % vocab, 7 % vocab, EOS_ID], dtype=np.int64)] * 2)
        for name in names.values():
            try:
                out = client.infer(name, ids, mask)
            except ValueError as exc:  # e.g. an empty output tensor that cannot take its shape
                raise RuntimeError(f"{name}: malformed output ({exc})") from exc
            if out.shape != (2, 1) or not np.all(np.isfinite(out)):
                raise RuntimeError(f"{name}: probe output {out!r}")
    finally:
        client.close()


def environment_report() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "numpy": np.__version__}
    try:
        import torch
        import transformers
        info.update(torch=torch.__version__, transformers=transformers.__version__,
                    cuda_available=torch.cuda.is_available())
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError as exc:
        info["import_error"] = str(exc)
    return info


def run(args: argparse.Namespace) -> int:
    hide_scipy_under_numpy1()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"environment": environment_report(), "args": vars(args)}
    print(json.dumps(report["environment"]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    t_start = time.perf_counter()
    try:
        if args.checkpoint:
            checkpoint = Path(args.checkpoint).resolve()
        else:
            checkpoint = build_random_checkpoint(
                work / "checkpoint", layers=args.layers, hidden=args.hidden, heads=args.heads,
                intermediate=args.hidden * 4, max_positions=args.max_length)
            print(f"built random checkpoint in {time.perf_counter() - t_start:.1f}s", flush=True)
        cfg = json.loads((checkpoint / "config.json").read_text())
        vocab = int(cfg["vocab_size"])
        max_length = min(args.max_length, int(cfg["max_position_embeddings"]) - 2)
        precisions = [p for p in args.precisions.split(",") if p]
        if "fp32" not in precisions:
            precisions.insert(0, "fp32")
        kinds = ["KIND_GPU", "KIND_CPU"] if args.device == "cuda" else ["KIND_CPU"]
        server = None
        for kind in kinds:
            repo = work / f"repository-{kind}"
            names = write_repository(repo, checkpoint, precisions, max_batch_size=args.max_batch_size,
                                     max_length=max_length, kind=kind, gpus=args.gpus,
                                     instances=args.instances, device=args.device)
            try:
                t0 = time.perf_counter()
                server = start_server(repo, out / "tritonserver.log", tuple(args.ports), args.start_timeout)
                report["instance_kind"] = kind
                report["server_ready_s"] = round(time.perf_counter() - t0, 1)
                print(f"tritonserver ready with {kind} instances in {report['server_ready_s']}s", flush=True)
                probe(server.http_url, names, vocab)
                break
            except Exception as exc:  # noqa: BLE001 - try the next kind, report both
                report.setdefault("start_failures", []).append(f"{kind}: {exc}")
                print(f"no working server with {kind}: {exc}", flush=True)
                if server is not None:
                    server.stop()
                    server = None
        if server is None:
            report["status"] = "server did not start"
            return 2
        try:
            return _checks(args, report, server.http_url, names, checkpoint, vocab, max_length)
        finally:
            server.stop()
    finally:
        report["total_s"] = round(time.perf_counter() - t_start, 1)
        (out / "gpu_check.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        shutil.rmtree(work, ignore_errors=True)
        print(f"report: {out / 'gpu_check.json'}", flush=True)


def _checks(args: argparse.Namespace, report: dict[str, Any], url: str, names: dict[str, str],
            checkpoint: Path, vocab: int, max_length: int) -> int:
    client = HttpInfer(url)
    parity = make_parity_set(vocab, max_length, queries=args.queries, passages=args.passages,
                             long_lengths=[n for n in (2048, max_length) if n <= max_length])
    seqs, groups = parity.sequences, parity.query_of
    results: list[Parity] = []

    t0 = time.perf_counter()
    served = {p: score_all(client, names[p], seqs, args.max_batch_size) for p in names}
    report["parity_scoring_s"] = round(time.perf_counter() - t0, 1)
    report["score_range_fp32"] = [float(served["fp32"].min()), float(served["fp32"].max())]

    # 1. served fp32 vs in-process CPU fp32 (independent device and attention kernel)
    few = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))[:args.cpu_reference_pairs]
    ref = cpu_reference(checkpoint, [seqs[i] for i in few])
    results.append(compare("fp32-served-vs-cpu", ref, served["fp32"][few], [0] * len(few),
                           atol=args.fp32_atol, rtol=args.fp32_atol))
    # 2. padding invariance: each of those pairs alone (batch 1, no padding) on the server
    alone = np.asarray([client.infer(names["fp32"], *pad_batch([seqs[i]]))[0, 0] for i in few],
                       dtype=np.float32)
    results.append(compare("fp32-alone-vs-padded-batch", alone, served["fp32"][few], [0] * len(few),
                           atol=args.fp32_atol, rtol=args.fp32_atol))
    # 3. low precision vs fp32 on every parity pair
    tolerances = {"fp16": (args.fp16_atol, args.fp16_rtol), "bf16": (args.bf16_atol, args.bf16_rtol)}
    for p in names:
        if p != "fp32":
            atol, rtol = tolerances[p]
            results.append(compare(f"{p}-vs-fp32", served["fp32"], served[p], groups, atol=atol, rtol=rtol))
    report["parity"] = [r.__dict__ for r in results]
    for r in results:
        print(f"{'PASS' if r.passed else 'FAIL'} {r.name}: max|d|={r.max_abs:.3g} mean|d|={r.mean_abs:.3g} "
              f"order violations {r.order_violations}/{r.separated_pairs} tau_min={r.min_kendall_tau:.3f}",
              flush=True)
    # 4. throughput
    report["throughput"] = []
    for length in [n for n in args.lengths if n <= max_length]:
        for p in names:
            row = throughput(url, names[p], length=length, batch=args.batch, concurrency=args.concurrency,
                             seconds=args.seconds, vocab_size=vocab)
            row["precision"] = p
            report["throughput"].append(row)
            print(f"throughput {p} L={length} B={args.batch} C={args.concurrency}: {row['pairs_per_s']} pairs/s "
                  f"p50 {row['latency_ms_p50']} ms p95 {row['latency_ms_p95']} ms"
                  + (f" errors {row['errors'][:1]}" if row["errors"] else ""), flush=True)
    client.close()
    failed = [r.name for r in results if not r.passed]
    failed += [f"throughput {r['precision']} L={r['length']}" for r in report["throughput"] if r["errors"]]
    report["status"] = "FAIL: " + ", ".join(failed) if failed else "PASS"
    print(report["status"], flush=True)
    return 1 if failed else 0


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="XLM-R sequence-classification checkpoint dir (default: random)")
    p.add_argument("--out", default="gpu-check-out")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                   help="cpu: a CPU smoke run of the same pipeline (no GPU needed)")
    p.add_argument("--precisions", default="fp32,fp16,bf16")
    p.add_argument("--gpus", type=int, nargs="+", default=[0])
    p.add_argument("--instances", type=int, default=1)
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--max-length", type=int, default=8192)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--queries", type=int, default=8)
    p.add_argument("--passages", type=int, default=16)
    p.add_argument("--cpu-reference-pairs", type=int, default=6)
    p.add_argument("--fp32-atol", type=float, default=1e-3)
    p.add_argument("--fp16-atol", type=float, default=2e-2)
    p.add_argument("--fp16-rtol", type=float, default=1e-2)
    p.add_argument("--bf16-atol", type=float, default=1e-1)
    p.add_argument("--bf16-rtol", type=float, default=5e-2)
    p.add_argument("--lengths", type=int, nargs="+", default=[128, 512])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--ports", type=int, nargs=3, default=[18000, 18001, 18002])
    p.add_argument("--start-timeout", type=float, default=240.0)
    args = p.parse_args(argv)
    if args.batch > args.max_batch_size:
        p.error("--batch must be <= --max-batch-size")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
