"""Scoring token rows of an encoder reranker with ONNX Runtime on CPU; no Triton in here, so the
benchmarks and unit tests run exactly what the served model runs (reranker_server.onnx_model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reranker_core.limits import ONNX_CPU_MAX_BATCH_TOKENS as DEFAULT_MAX_BATCH_TOKENS
from reranker_core.packing import pad_rows, plan_chunks
from reranker_core.tensors import ATTENTION_MASK, INPUT_IDS, SCORES
from reranker_server.openvino_session import create_openvino_session
from reranker_server.ort_session import create_session
from reranker_server.token_requests import TokenRows

DYNAMIC_QUANT_OPS = {"DynamicQuantizeMatMul", "DynamicQuantizeLinear", "QAttention", "MatMulInteger"}


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
