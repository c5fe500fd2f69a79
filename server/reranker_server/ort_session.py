"""ONNX Runtime sessions for the encoder runner: execution providers and session options
(importable without Triton, e.g. by scripts/gpu_check.py)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

EXECUTION_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                       "tensorrt": "TensorrtExecutionProvider"}


def session_providers(names: str = "cpu", device_id: int = 0,
                      available: Optional[Sequence[str]] = None) -> list:
    """ONNX Runtime providers for a comma list such as "tensorrt,cuda" (in priority order; the
    CPU provider is always last, for ops the others do not run). Raises ValueError naming the
    problem for an unknown name or a provider this ONNX Runtime build does not have."""
    requested = [n.strip().lower() for n in (names or "cpu").split(",") if n.strip()] or ["cpu"]
    unknown = [n for n in requested if n not in EXECUTION_PROVIDERS]
    if unknown:
        raise ValueError(f"unknown execution provider(s) {unknown}: use {', '.join(EXECUTION_PROVIDERS)}")
    if available is None:
        import onnxruntime as ort
        available = ort.get_available_providers()
    missing = [EXECUTION_PROVIDERS[n] for n in requested if EXECUTION_PROVIDERS[n] not in available]
    if missing:
        raise ValueError(f"this ONNX Runtime has no {', '.join(missing)} (it has {', '.join(available)}); "
                         "install onnxruntime-gpu for cuda/tensorrt, or use execution_providers=cpu")
    providers: list = []
    for name in dict.fromkeys(requested + ["cpu"]):
        provider = EXECUTION_PROVIDERS[name]
        providers.append(provider if name == "cpu" else (provider, {"device_id": str(device_id)}))
    return providers


def create_session(path: Path, intra_op_threads: int = 0, providers: Optional[list] = None):
    """An ONNX Runtime session (CPU unless `providers` says otherwise): full graph optimisation,
    one GEMM at a time on every core, no thread spinning (the Triton frontend and stub share the
    cores), no memory patterns (shapes change on every call). Measured in docs/benchmarks.md."""
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = intra_op_threads or len(os.sched_getaffinity(0))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.enable_mem_pattern = False
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])
