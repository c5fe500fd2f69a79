"""Scoring token rows of an encoder reranker with ONNX Runtime on CPU; no Triton in here, so the
benchmarks and unit tests run exactly what the served model runs (reranker_server.onnx_model)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reranker_core.limits import ONNX_CPU_MAX_BATCH_TOKENS as DEFAULT_MAX_BATCH_TOKENS
from reranker_core.packing import pad_rows, plan_chunks
from reranker_core.tensors import ATTENTION_MASK, INPUT_IDS, SCORES
from reranker_server.openvino_session import create_openvino_session
from reranker_server.token_batches import TokenRows

DYNAMIC_QUANT_OPS = {"DynamicQuantizeMatMul", "DynamicQuantizeLinear", "QAttention", "MatMulInteger"}


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
    import onnxruntime as ort

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


def create_session(path: Path, intra_op_threads: int = 0, **options):
    """An ONNX Runtime CPU session with `session_options(intra_op_threads, **options)`."""
    import onnxruntime as ort

    return ort.InferenceSession(
        str(path), session_options(intra_op_threads, **options), providers=["CPUExecutionProvider"]
    )


def rows_per_run_for(path: Path) -> int:
    """1 for dynamically quantized (int8) graphs, else 0 (no limit).

    Dynamic quantization computes activation scales over the whole input of a run, so a pair's
    int8 score would depend on the other pairs batched with it; one row per run keeps every score
    independent of its dynamic-batch neighbours. Non-ONNX graphs (OpenVINO IR) are not quantized."""
    import onnx

    if Path(path).suffix != ".onnx":
        return 0

    graph = onnx.load(str(path), load_external_data=False).graph
    return 1 if any(node.op_type in DYNAMIC_QUANT_OPS for node in graph.node) else 0


class EncoderScorer:
    """Scores requests' token rows with an ONNX session in shared length-sorted chunks."""

    def __init__(
        self,
        session,
        *,
        pad_id: int,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        max_rows_per_run: int = 0,
    ) -> None:
        self.session = session
        self.pad_id = pad_id
        self.max_batch_tokens = max_batch_tokens
        self.max_rows_per_run = max_rows_per_run

    @classmethod
    def from_file(
        cls,
        path: Path,
        *,
        pad_id: int,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        intra_op_threads: int = 0,
        inference_precision: str = "fp32",
    ) -> EncoderScorer:
        """A scorer for a graph file, set up as the served model sets it up: ONNX on ONNX Runtime,
        OpenVINO IR (.xml) on OpenVINO at `inference_precision` (reranker_server.openvino_session)."""
        if Path(path).suffix == ".xml":
            session = create_openvino_session(Path(path), inference_precision, intra_op_threads)
        else:
            session = create_session(path, intra_op_threads)
        return cls(
            session,
            pad_id=pad_id,
            max_batch_tokens=max_batch_tokens,
            max_rows_per_run=rows_per_run_for(path),
        )

    def score(self, requests: Sequence[TokenRows]) -> list[np.ndarray]:
        """Scores [n, 1] float32 per request, computed in shared length-sorted chunks."""
        rows = [row for req in requests for row in req.rows]
        scores = np.empty(len(rows), dtype=np.float32)
        for chunk in plan_chunks([len(r) for r in rows], self.max_batch_tokens, self.max_rows_per_run):
            ids, mask = pad_rows([rows[i] for i in chunk], self.pad_id)
            out = self.session.run([SCORES], {INPUT_IDS: ids, ATTENTION_MASK: mask})[0]
            scores[chunk] = out.reshape(-1)
        results, start = [], 0
        for req in requests:
            n = len(req.rows)
            results.append(scores[start : start + n].reshape(n, 1))
            start += n
        return results
