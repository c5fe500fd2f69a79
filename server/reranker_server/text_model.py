"""Triton Python-backend model `<name>-text`: UTF-8 text in, scores out, for callers in any language.

It validates a request (reranker_server.text_requests), encodes it with the shared core exactly
as the reranker_client SDK does, pads the token rows into length buckets (reranker_core.limits.
LENGTH_BUCKETS) and sends them to the token model `<name>` through BLS, all of a request's
sub-requests at once. Equal bucket shapes are what let Triton's dynamic batcher merge requests from
many callers on the native onnxruntime/TensorRT backends, which only batch equal shapes.

Tensors: query BYTES [1] (rerank shape) or queries BYTES [n] (pairs shape), passages BYTES [n];
scores FP32 [k, n] (one row per cutoff layer), indices INT64 [m] (rerank shape, best first; empty
unless the request asks for the indices output or gives top_n).
Request parameters: see reranker_core.options (normalize, max_length, query_max_length, top_n,
long_passages, window_stride, truncate; prompt, cutoff_layers, compress_ratio, compress_layers by family).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils

from reranker_core.errors import InputError
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES, TEXT_MODEL_MAX_PAIRS
from reranker_core.manifest import ModelManifest, file_sha256
from reranker_core.packing import RequestBatch
from reranker_core.pipeline import PreparedPairs, prepare_pairs
from reranker_core.scores import normalized, ranking
from reranker_core.tensors import (
    ATTENTION_MASK,
    INDICES,
    INPUT_IDS,
    PASSAGES,
    QUERIES,
    QUERY,
    SCORES,
    SEGMENT_LENGTHS,
    TOKEN_MODEL_PARAMETER,
)
from reranker_server.text_requests import TextRequest, parse_text_request
from reranker_server.triton_inputs import input_array, load_manifest, request_parameters
from reranker_server.triton_responses import Failures, OutputSpec, error_response, failure_kind


def load_tokenizer(model_dir: Path, manifest: ModelManifest):
    """The tokenizer exported next to this model, refused when its fingerprint differs."""
    from tokenizers import Tokenizer

    path = model_dir / manifest.tokenizer.file
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; re-export the model")
    digest = file_sha256(path)
    if digest != manifest.tokenizer.sha256:
        raise ValueError(
            f"{path} (sha256 {digest[:12]}) is not the tokenizer the model was exported with "
            f"({manifest.tokenizer.sha256[:12]}); re-export the model"
        )
    return Tokenizer.from_file(str(path))


class TokenModelError(RuntimeError):
    """The token model answered with an error; `invalid` when it was the request's fault."""

    def __init__(self, message: str, invalid: bool) -> None:
        super().__init__(message)
        self.invalid = invalid


class TritonPythonModel:
    """Entry point imported by the text model's 1/model.py."""

    def initialize(self, args: dict) -> None:
        model_config, params, self.manifest = load_manifest(args)
        self.token_model = params[TOKEN_MODEL_PARAMETER]
        self.max_pairs = int(params.get("max_pairs") or TEXT_MODEL_MAX_PAIRS)
        self.max_text_bytes = int(params.get("max_text_bytes") or MAX_TEXT_BYTES)
        self.max_request_tokens = int(params.get("max_request_tokens") or CLIENT_MAX_REQUEST_TOKENS)
        self.tokenizer = load_tokenizer(Path(args["model_repository"]), self.manifest)
        self.scores = OutputSpec(model_config, SCORES)
        self.indices = OutputSpec(model_config, INDICES)
        self.failures = Failures(str(model_config.get("name") or args.get("model_name", "")))

    def _parse(self, request) -> TextRequest:
        return parse_text_request(
            input_array(request, QUERY),
            input_array(request, QUERIES),
            input_array(request, PASSAGES),
            request_parameters(request),
            self.manifest,
            max_pairs=self.max_pairs,
            max_text_bytes=self.max_text_bytes,
            requested_outputs=request.requested_output_names(),
        )

    async def _call(self, batch: RequestBatch, parameters: dict[str, Any]) -> np.ndarray:
        inputs = [
            pb_utils.Tensor(INPUT_IDS, batch.input_ids),
            pb_utils.Tensor(ATTENTION_MASK, batch.attention_mask),
        ]
        if batch.segment_lengths is not None:
            inputs.append(pb_utils.Tensor(SEGMENT_LENGTHS, batch.segment_lengths))
        request = pb_utils.InferenceRequest(
            model_name=self.token_model, inputs=inputs, requested_output_names=[SCORES], parameters=parameters
        )
        response = await request.async_exec()
        if response.has_error():
            error = response.error()
            code = error.code() if hasattr(error, "code") else None
            invalid = code is not None and code == getattr(pb_utils.TritonError, "INVALID_ARG", object())
            raise TokenModelError(error.message(), invalid)
        return pb_utils.get_output_tensor_by_name(response, SCORES).as_numpy()

    async def _score(self, request) -> Any:
        text = self._parse(request)
        prepared: PreparedPairs = prepare_pairs(self.tokenizer, self.manifest, text.pairs, text.options)
        batches = prepared.batches(
            self.manifest,
            max_pairs=self.manifest.max_batch_size,
            max_tokens=self.max_request_tokens,
            buckets=True,
        )
        parameters = text.options.token_parameters()
        outputs = await asyncio.gather(*(self._call(b, parameters) for b in batches))
        scores = normalized(prepared.pair_scores(batches, outputs), text.options.normalize)
        indices = ranking(scores[:, -1], text.options.top_n) if text.wants_indices else []
        return pb_utils.InferenceResponse(
            output_tensors=[self.scores.tensor(scores.T), self.indices.tensor(np.asarray(indices))]
        )

    async def _respond(self, request) -> Any:
        try:
            return await self._score(request)
        except Exception as exc:  # one request's failure never fails the others
            error = exc
        if isinstance(error, InputError):
            message, invalid = str(error), True
        elif isinstance(error, TokenModelError):
            message, invalid = f"{self.token_model}: {error}", error.invalid
        else:
            message, invalid = f"scoring failed: {type(error).__name__}: {error}", False
        self.failures.record(failure_kind(error, invalid=invalid), message)
        return error_response(message, invalid=invalid)

    async def execute(self, requests: list) -> list:
        return list(await asyncio.gather(*(self._respond(r) for r in requests)))

    def finalize(self) -> None:
        self.tokenizer = None
