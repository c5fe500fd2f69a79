"""OpenVINO for the encoder runner's bf16 CPU variant, behind ONNX Runtime's `run` interface.

ONNX Runtime has no x86 bf16 path; OpenVINO computes bf16 natively on CPUs with AVX512-BF16 or
AMX-BF16 (docs/benchmarks.md). The exported graph (OpenVINO IR, fp32 weights) is compiled with
`INFERENCE_PRECISION_HINT` bf16 where the CPU has native bf16 and f32 where it does not, saying so
(reranker_core.cpu_features): emulated bf16 would be slower than fp32. The tensor contract is the
ONNX graph's: input_ids / attention_mask INT64 [batch, seq] -> scores FP32 [batch, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from reranker_core.cpu_features import Bf16Support, bf16_fallback_message, bf16_support

OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16"}


def effective_precision(requested: str, support: Bf16Support | None = None) -> str:
    """The precision a CPU runs for `requested` (fp32 | bf16): bf16 only where it is native."""
    if requested not in OPENVINO_PRECISIONS:
        raise ValueError(f"inference precision {requested!r} is not supported: fp32 or bf16")
    if requested == "bf16" and not (support or bf16_support()).native:
        return "fp32"
    return requested


class OpenVinoSession:
    """A compiled OpenVINO model with `run(output_names, feeds)` like onnxruntime.InferenceSession."""

    def __init__(self, compiled, precision: str) -> None:
        self.compiled = compiled
        self.precision = precision
        self.request = compiled.create_infer_request()
        self.output_names = [o.get_any_name() for o in compiled.outputs]

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Outputs (float32) in the order of `output_names` (None: every output)."""
        results = self.request.infer(dict(feeds))
        by_name = {port.get_any_name(): value for port, value in results.items()}
        names = list(output_names) if output_names else self.output_names
        return [np.asarray(by_name[n], dtype=np.float32) for n in names]

    def get_providers(self) -> list[str]:
        """What runs the model, for the load log line (as ONNX Runtime lists its providers)."""
        return [f"OpenVINO CPU ({self.precision})"]


def create_openvino_session(
    path: Path,
    precision: str = "bf16",
    intra_op_threads: int = 0,
    *,
    support: Bf16Support | None = None,
    log: Callable[[str], None] = print,
) -> OpenVinoSession:
    """Compile `path` (OpenVINO IR or ONNX) for the CPU at `precision` (bf16 falls back to fp32,
    logged, on a CPU without native bf16); `intra_op_threads` 0 = OpenVINO's default."""
    import openvino as ov

    support = support or bf16_support()
    runs = effective_precision(precision, support)
    if runs != precision:
        log(bf16_fallback_message(Path(path).name, support))
    config: dict[str, object] = {
        "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[runs],
        "PERFORMANCE_HINT": "LATENCY",
    }
    if intra_op_threads:
        config["INFERENCE_NUM_THREADS"] = int(intra_op_threads)
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    return OpenVinoSession(compiled, runs)
