"""ONNX Runtime sessions for the encoder runner: execution providers and session options
(importable without Triton, e.g. by scripts/gpu_check.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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
        import onnxruntime as ort

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


def create_session(path: Path, intra_op_threads: int = 0, providers: list | None = None):
    """An ONNX Runtime session (CPU unless `providers` says otherwise) with the runner's session
    options (reranker_server.encoder_scorer.session_options)."""
    import onnxruntime as ort

    from reranker_server.encoder_scorer import session_options

    return ort.InferenceSession(
        str(path), session_options(intra_op_threads), providers=providers or ["CPUExecutionProvider"]
    )
