"""Triton Python-backend model running an exported encoder reranker with ONNX Runtime.

This is what the embedded server (Python backend only) serves, on the CPU by default; GPU nodes
run the same ONNX file on Triton's native onnxruntime/TensorRT backends with the same tensor
contract. The config parameter `execution_providers` (comma list of cpu, cuda, tensorrt; default
cpu) lets this runner use ONNX Runtime's CUDA/TensorRT providers where onnxruntime-gpu is
installed (a KIND_GPU instance runs on its own GPU). An OpenVINO IR file (`onnx_file` ending in
.xml, written by `--cpu-graph bf16`) runs on OpenVINO's CPU plugin at the config parameter
`inference_precision` (fp32 | bf16; bf16 runs fp32, logged, on a CPU without native bf16).
Requests arriving in one dynamic batch are validated one by one (a bad request gets its own error),
then all their pairs are re-batched, length-sorted, under a token budget
(reranker_server.encoder_scorer). Failures are logged and counted (reranker_server.triton_responses).
"""

from __future__ import annotations

import triton_python_backend_utils as pb_utils

from reranker_core.errors import InputError
from reranker_core.tensors import ATTENTION_MASK, INPUT_IDS, SCORES
from reranker_server.encoder_scorer import DEFAULT_MAX_BATCH_TOKENS, EncoderScorer, rows_per_run_for
from reranker_server.openvino_session import create_openvino_session
from reranker_server.ort_session import create_session, session_providers
from reranker_server.token_requests import TokenRows, validate_token_inputs
from reranker_server.triton_inputs import input_array, load_manifest, version_dir
from reranker_server.triton_responses import (
    INVALID_ARGUMENT,
    Failures,
    OutputSpec,
    error_response,
    failure_kind,
)

OPENVINO_IR_SUFFIX = ".xml"


class TritonPythonModel:
    """Entry point imported by the served model's 1/model.py."""

    def initialize(self, args: dict) -> None:
        model_config, params, self.manifest = load_manifest(args)
        self.output = OutputSpec(model_config, SCORES)
        self.failures = Failures(str(model_config.get("name") or self.manifest.name))
        onnx_path = version_dir(args) / params.get("onnx_file", "model.onnx")
        self.max_pairs = int(model_config.get("max_batch_size") or self.manifest.max_batch_size)
        threads = int(params.get("intra_op_threads") or 0)
        if onnx_path.suffix == OPENVINO_IR_SUFFIX:  # EncoderScorer.from_file's rule
            precision = params.get("inference_precision") or "fp32"
            session = create_openvino_session(onnx_path, precision, threads)
        else:
            device_id = int(args.get("model_instance_device_id") or 0)
            providers = session_providers(params.get("execution_providers") or "cpu", device_id)
            session = create_session(onnx_path, threads, providers)
        print(
            f"{model_config.get('name')}: {onnx_path.name} on {', '.join(session.get_providers())}",
            flush=True,
        )
        self.scorer = EncoderScorer(
            session,
            pad_id=self.manifest.pad_id,
            max_batch_tokens=int(params.get("max_batch_tokens") or DEFAULT_MAX_BATCH_TOKENS),
            max_rows_per_run=rows_per_run_for(onnx_path),
        )

    def _rows(self, request) -> TokenRows:
        return validate_token_inputs(
            input_array(request, INPUT_IDS),
            input_array(request, ATTENTION_MASK),
            vocab_size=self.manifest.vocab_size,
            max_positions=self.manifest.max_positions,
            max_pairs=self.max_pairs,
        )

    def execute(self, requests: list) -> list:
        responses: list[object | None] = [None] * len(requests)
        valid: list[tuple[int, TokenRows]] = []
        for i, request in enumerate(requests):
            try:
                valid.append((i, self._rows(request)))
            except InputError as exc:
                self.failures.record(INVALID_ARGUMENT, str(exc))
                responses[i] = error_response(str(exc), invalid=True)
        if valid:
            try:
                scores = self.scorer.score([rows for _, rows in valid])
                for (i, _), s in zip(valid, scores):
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[self.output.tensor(s)])
            except Exception as exc:  # a runtime failure answers this batch, the model lives on
                message = f"inference failed: {exc}"
                self.failures.record(
                    failure_kind(exc, invalid=False), f"{type(exc).__name__}: {exc}", count=len(valid)
                )
                for i, _ in valid:
                    responses[i] = error_response(message, invalid=False)
        return responses

    def finalize(self) -> None:
        self.scorer = None
