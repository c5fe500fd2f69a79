"""What compute_score does around the network call: check arguments, encode, pack, and turn the
server's score matrices back into FlagEmbedding's return shapes. Shared by the sync and asyncio clients."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
from tokenizers import Tokenizer

from reranker_client.errors import InferenceError, InvalidInputError, caller_errors
from reranker_client.ops import InferRequest, Tensor, encode_parameters
from reranker_core.encoding import encode_pairs
from reranker_core.limits import MAX_TEXT_BYTES
from reranker_core.manifest import ENCODER, GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE, ModelManifest
from reranker_core.packing import RequestBatch, plan_requests
from reranker_core.tensors import ATTENTION_MASK, INPUT_IDS, SCORES, SEGMENT_LENGTHS
from reranker_core.texts import normalize_pairs, positive_int

Scores = Union[list[float], list[list[float]]]

# Keyword arguments each family accepts beyond the common ones (FlagEmbedding's names).
FAMILY_KWARGS = {
    ENCODER: set(),
    GEMMA: {"prompt"},
    MINICPM_LAYERWISE: {"prompt", "cutoff_layers"},
    GEMMA2_LIGHTWEIGHT: {"prompt", "cutoff_layers", "compress_ratio", "compress_layers"},
}


OUTPUT_NAME = SCORES


@dataclass
class ScoringPlan:
    count: int
    batches: list[RequestBatch]
    parameters: dict[str, Any]   # as sent to Triton: lists JSON-encoded

    @property
    def requests(self) -> tuple[InferRequest, ...]:
        """One token-model request per batch."""
        return tuple(batch_request(b, self.parameters or None) for b in self.batches)


def batch_request(batch: RequestBatch, parameters: Optional[dict[str, Any]]) -> InferRequest:
    tensors = [Tensor(INPUT_IDS, "INT64", batch.input_ids), Tensor(ATTENTION_MASK, "INT64", batch.attention_mask)]
    if batch.segment_lengths is not None:
        tensors.append(Tensor(SEGMENT_LENGTHS, "INT64", batch.segment_lengths))
    return InferRequest(tuple(tensors), (OUTPUT_NAME,), parameters)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _int_list(value: Any, name: str) -> list[int]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (not isinstance(items, (list, tuple)) or not items
            or any(isinstance(v, bool) or not isinstance(v, int) for v in items)):
        raise InvalidInputError(f"{name} must be an int or a non-empty list of ints, got {value!r}")
    return [int(v) for v in items]


def family_parameters(family: str, kwargs: dict[str, Any]) -> tuple[Optional[str], dict[str, Any]]:
    """(prompt, request parameters) from a family's extra keyword arguments, checked."""
    allowed = FAMILY_KWARGS[family]
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise InvalidInputError(
            f"unexpected argument(s) {', '.join(unknown)} for a {family} model; "
            f"accepted: {', '.join(sorted(allowed)) or 'none beyond the common ones'}")
    prompt = kwargs.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInputError(f"prompt must be a str, got {type(prompt).__name__}")
    params: dict[str, Any] = {}
    if kwargs.get("cutoff_layers") is not None:
        params["cutoff_layers"] = _int_list(kwargs["cutoff_layers"], "cutoff_layers")
    if kwargs.get("compress_layers") is not None:
        params["compress_layers"] = _int_list(kwargs["compress_layers"], "compress_layers")
    if kwargs.get("compress_ratio") is not None:
        ratio = kwargs["compress_ratio"]
        if isinstance(ratio, bool) or not isinstance(ratio, int):
            raise InvalidInputError(f"compress_ratio must be an int, got {ratio!r}")
        params["compress_ratio"] = ratio
    return prompt, params


def to_columns(scores: np.ndarray, normalize: bool) -> Scores:
    """[n, width] scores -> a flat list (width 1) or one list per cutoff layer; sigmoid if normalize."""
    columns = [[float(v) for v in scores[:, j]] for j in range(scores.shape[1])]
    if normalize:
        columns = [[sigmoid(v) for v in col] for col in columns]
    return columns[0] if len(columns) == 1 else columns


class ScoringCore:
    """Per-model state of a client that tokenizes itself: manifest, tokenizer, request limits, and
    the token model it sends to (`model`, `version`)."""

    tokenize = "client"

    def __init__(self, manifest: ModelManifest, tokenizer: Tokenizer, *, max_batch_size: int,
                 max_request_tokens: int, max_text_bytes: int = MAX_TEXT_BYTES,
                 model: str = "", version: str = "") -> None:
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_request_tokens = max_request_tokens
        self.max_text_bytes = max_text_bytes
        self.model, self.version = model or manifest.name, version

    def llm_parameters(self, kwargs: dict[str, Any]) -> tuple[Optional[str], dict[str, Any]]:
        """(prompt, request parameters) from the family's extra keyword arguments."""
        return family_parameters(self.manifest.family, kwargs)

    def plan(self, pairs: Any, *, max_length: Optional[int], query_max_length: Optional[int],
             batch_size: Optional[int], **kwargs: Any) -> ScoringPlan:
        """Validate, encode and pack a compute_score call."""
        with caller_errors():
            pairs = normalize_pairs(pairs, max_text_bytes=self.max_text_bytes)
            max_length = positive_int(max_length, "max_length") or self.manifest.default_max_length
            query_max_length = positive_int(query_max_length, "query_max_length") or max_length * 3 // 4
            batch_size = positive_int(batch_size, "batch_size")
            prompt, params = self.llm_parameters(kwargs)
            encoded = encode_pairs(self.tokenizer, self.manifest, pairs, max_length=max_length,
                                   query_max_length=query_max_length, prompt=prompt)
        longest = max(len(e.input_ids) for e in encoded)
        if longest > self.manifest.max_positions:
            raise InvalidInputError(
                f"a pair encodes to {longest} tokens, more than the model's {self.manifest.max_positions}; "
                f"lower max_length (the query alone is limited by query_max_length={query_max_length})")
        pad_id = self.manifest.tokenizer.pad_token_id
        batches = plan_requests(
            encoded, max_pairs=min(batch_size or self.max_batch_size, self.max_batch_size),
            pad_id=0 if pad_id is None else pad_id, max_tokens=self.max_request_tokens,
            with_segments=self.manifest.family == GEMMA2_LIGHTWEIGHT)
        return ScoringPlan(len(pairs), batches, encode_parameters(params))

    @staticmethod
    def collect(plan: ScoringPlan, answers: Sequence[dict[str, np.ndarray]], normalize: bool) -> Scores:
        """Scores in input order: a flat list, or one list per cutoff layer when several."""
        if any(OUTPUT_NAME not in answer for answer in answers):
            raise InferenceError(f"the server answered without a {OUTPUT_NAME!r} output")
        outputs = [answer[OUTPUT_NAME] for answer in answers]
        width = outputs[0].reshape(len(plan.batches[0].indices), -1).shape[1]
        scores = np.empty((plan.count, width), dtype=np.float64)
        for batch, out in zip(plan.batches, outputs):
            scores[batch.indices] = out.reshape(len(batch.indices), width)
        return to_columns(scores, normalize)
