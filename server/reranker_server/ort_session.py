"""ONNX Runtime sessions for the encoder runner: execution providers, session options and the
one place a session is created (importable without Triton, e.g. by scripts/gpu_check.py and the
benchmarks)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

EXECUTION_PROVIDERS = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


def session_providers(names: str = "cpu", device_id: int = 0, available: Sequence[str] | None = None) -> list:
    """ONNX Runtime providers for a comma list such as "tensorrt,cuda" (in priority order; the
    CPU provider is always last, for ops the others do not run). Raises ValueError naming the
    problem for an unknown name or a provider this ONNX Runtime build does not have."""
    requested = [n.strip().lower() for n in (names or "cpu").split(",") if n.strip()] or ["cpu"]
    unknown = [n for n in requested if n not in EXECUTION_PROVIDERS]
    if unknown:
        raise ValueError(f"unknown execution provider(s) {unknown}: use {', '.join(EXECUTION_PROVIDERS)}")
    if available is None:
        available = ort.get_available_providers()
    missing = [EXECUTION_PROVIDERS[n] for n in requested if EXECUTION_PROVIDERS[n] not in available]
    if missing:
        raise ValueError(
            f"this ONNX Runtime has no {', '.join(missing)} (it has {', '.join(available)}); "
            "install onnxruntime-gpu for cuda/tensorrt, or use execution_providers=cpu"
        )
    providers: list = []
    for name in dict.fromkeys(requested + ["cpu"]):
        provider = EXECUTION_PROVIDERS[name]
        providers.append(provider if name == "cpu" else (provider, {"device_id": str(device_id)}))
    return providers


def available_cpus() -> int:
    """CPUs this process may run on (cgroup/affinity aware)."""
    return max(1, len(os.sched_getaffinity(0)))


def session_options(intra_op_threads: int = 0, *, spinning: bool = False, pre_optimized: bool = False):
    """SessionOptions of the CPU runner (measured in docs/benchmarks.md):

    - intra-op threads = the CPUs available (one GEMM at a time uses them all), inter-op 1,
      sequential execution (the graph is a chain);
    - no thread spinning by default: the Triton frontend, the Python stub and the client share
      the cores with ONNX Runtime's workers, and spinning workers steal their time between calls;
    - ORT_ENABLE_ALL, or EXTENDED for a graph fused offline (`pre_optimized`, skips re-running
      the layout transformations at load);
    - memory patterns off (shapes change on every call).
    """
    opts = ort.SessionOptions()
    opts.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        if pre_optimized
        else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    opts.intra_op_num_threads = intra_op_threads or available_cpus()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


def create_session(path: Path, intra_op_threads: int = 0, providers: list | None = None, **options: bool):
    """An ONNX Runtime session with `session_options(intra_op_threads, **options)`, on the CPU
    unless `providers` (session_providers) says otherwise."""
    return ort.InferenceSession(
        str(path),
        session_options(intra_op_threads, **options),
        providers=providers or ["CPUExecutionProvider"],
    )
