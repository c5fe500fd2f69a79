"""Triton Python-backend model running an exported encoder reranker with ONNX Runtime.

This is what the embedded server (Python backend only) serves, on the CPU by default; GPU nodes
run the same ONNX file on Triton's native onnxruntime/TensorRT backends with the same tensor
contract. The config parameter `execution_providers` (comma list of cpu, cuda, tensorrt; default
cpu) lets this runner use ONNX Runtime's CUDA/TensorRT providers where onnxruntime-gpu is
installed (a KIND_GPU instance runs on its own GPU).
Requests arriving in one dynamic batch are validated one by one (a bad request gets its own error),
then all their pairs are re-batched, length-sorted, under a token budget.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import triton_python_backend_utils as pb_utils

from reranker_core.errors import InputError
from reranker_core.limits import ONNX_CPU_MAX_BATCH_TOKENS
from reranker_core.packing import pad_rows, plan_chunks
from reranker_server.token_batches import TokenRows, validate_token_inputs
from reranker_server.ort_session import create_session, session_providers
from reranker_server.triton_glue import load_manifest, version_dir


DYNAMIC_QUANT_OPS = {"DynamicQuantizeMatMul", "DynamicQuantizeLinear", "QAttention", "MatMulInteger"}


def rows_per_run_for(path: Path) -> int:
    """1 for dynamically quantized (int8) graphs, else 0 (no limit).

    Dynamic quantization computes activation scales over the whole input of a run, so a pair's
    int8 score would depend on the other pairs batched with it; one row per run keeps every score
    independent of its dynamic-batch neighbours."""
    import onnx
    graph = onnx.load(str(path), load_external_data=False).graph
    return 1 if any(node.op_type in DYNAMIC_QUANT_OPS for node in graph.node) else 0


class EncoderScorer:
    """Scores token rows with an ONNX session; independent of Triton for unit tests."""

    def __init__(self, session, *, pad_id: int, max_batch_tokens: int, max_rows_per_run: int = 0) -> None:
        self.session = session
        self.pad_id = pad_id
        self.max_batch_tokens = max_batch_tokens
        self.max_rows_per_run = max_rows_per_run

    def score(self, requests: Sequence[TokenRows]) -> list[np.ndarray]:
        """Scores [n, 1] float32 per request, computed in shared length-sorted chunks."""
        rows = [row for req in requests for row in req.rows]
        scores = np.empty(len(rows), dtype=np.float32)
        for chunk in plan_chunks([len(r) for r in rows], self.max_batch_tokens, self.max_rows_per_run):
            ids, mask = pad_rows([rows[i] for i in chunk], self.pad_id)
            out = self.session.run(["scores"], {"input_ids": ids, "attention_mask": mask})[0]
            scores[chunk] = out.reshape(-1)
        results, start = [], 0
        for req in requests:
            n = len(req.rows)
            results.append(scores[start:start + n].reshape(n, 1))
            start += n
        return results


class TritonPythonModel:
    """Entry point imported by the served model's 1/model.py."""

    def initialize(self, args: dict) -> None:
        model_config, params, self.manifest = load_manifest(args)
        onnx_path = version_dir(args) / params.get("onnx_file", "model.onnx")
        self.max_pairs = int(model_config.get("max_batch_size") or self.manifest.max_batch_size)
        device_id = int(args.get("model_instance_device_id") or 0)
        providers = session_providers(params.get("execution_providers") or "cpu", device_id)
        session = create_session(onnx_path, int(params.get("intra_op_threads") or 0), providers)
        print(f"{model_config.get('name')}: {onnx_path.name} on {', '.join(session.get_providers())}",
              flush=True)
        self.scorer = EncoderScorer(session, pad_id=self.manifest.pad_id,
                                    max_batch_tokens=int(params.get("max_batch_tokens")
                                                         or ONNX_CPU_MAX_BATCH_TOKENS),
                                    max_rows_per_run=rows_per_run_for(onnx_path))

    def _rows(self, request) -> TokenRows:
        ids = pb_utils.get_input_tensor_by_name(request, "input_ids")
        mask = pb_utils.get_input_tensor_by_name(request, "attention_mask")
        return validate_token_inputs(
            None if ids is None else ids.as_numpy(), None if mask is None else mask.as_numpy(),
            vocab_size=self.manifest.vocab_size, max_positions=self.manifest.max_positions,
            max_pairs=self.max_pairs)

    def execute(self, requests: list) -> list:
        responses: list[Optional[object]] = [None] * len(requests)
        valid: list[tuple[int, TokenRows]] = []
        for i, request in enumerate(requests):
            try:
                valid.append((i, self._rows(request)))
            except InputError as exc:
                responses[i] = _error(str(exc), pb_utils.TritonError.INVALID_ARG)
        if valid:
            try:
                scores = self.scorer.score([rows for _, rows in valid])
                for (i, _), s in zip(valid, scores):
                    responses[i] = pb_utils.InferenceResponse(
                        output_tensors=[pb_utils.Tensor("scores", s)])
            except Exception as exc:  # a runtime failure answers this batch, the model lives on
                for i, _ in valid:
                    responses[i] = _error(f"inference failed: {exc}", pb_utils.TritonError.INTERNAL)
        return responses

    def finalize(self) -> None:
        self.scorer = None


def _error(message: str, code) -> object:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message, code))
