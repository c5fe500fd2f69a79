"""What compute_score does around the network call when the client tokenizes: check arguments,
encode and pack with the shared core, and turn the token model's score matrices back into
FlagEmbedding's return shapes. Shared by the sync and asyncio clients."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from reranker_client.errors import InferenceError, InvalidInputError, caller_errors
from reranker_client.ops import InferRequest, Tensor
from reranker_core.limits import MAX_TEXT_BYTES
from reranker_core.manifest import ModelManifest
from reranker_core.options import TOP_N, ScoreOptions, parse_options
from reranker_core.packing import RequestBatch
from reranker_core.pipeline import PreparedPairs, prepare_pairs
from reranker_core.scores import normalized
from reranker_core.tensors import ATTENTION_MASK, INPUT_IDS, SCORES, SEGMENT_LENGTHS
from reranker_core.texts import normalize_pairs, positive_int

Scores = list[float] | list[list[float]]
OUTPUT_NAME = SCORES


@dataclass
class ScoringPlan:
    prepared: PreparedPairs
    batches: list[RequestBatch]
    options: ScoreOptions

    @property
    def count(self) -> int:
        return self.prepared.count

    @property
    def parameters(self) -> dict[str, Any]:
        """Request parameters for the token model (lists JSON-encoded)."""
        return self.options.token_parameters()

    @property
    def requests(self) -> tuple[InferRequest, ...]:
        """One token-model request per batch."""
        return tuple(batch_request(b, self.parameters or None) for b in self.batches)


def batch_request(batch: RequestBatch, parameters: dict[str, Any] | None) -> InferRequest:
    tensors = [
        Tensor(INPUT_IDS, "INT64", batch.input_ids),
        Tensor(ATTENTION_MASK, "INT64", batch.attention_mask),
    ]
    if batch.segment_lengths is not None:
        tensors.append(Tensor(SEGMENT_LENGTHS, "INT64", batch.segment_lengths))
    return InferRequest(tuple(tensors), (OUTPUT_NAME,), parameters)


def call_options(
    manifest: ModelManifest,
    max_length: int | None,
    query_max_length: int | None,
    kwargs: dict[str, Any],
) -> ScoreOptions:
    """compute_score's keyword arguments, checked against the model's family (InputError if not)."""
    if TOP_N in kwargs:
        raise InvalidInputError("top_n is an argument of rerank(), not of compute_score()")
    return parse_options({"max_length": max_length, "query_max_length": query_max_length, **kwargs}, manifest)


def to_columns(scores: np.ndarray, normalize: bool) -> Scores:
    """[pairs, k] scores -> a flat list (k = 1) or one list per cutoff layer; sigmoid if normalize."""
    scores = normalized(scores, normalize)
    columns = [[float(v) for v in scores[:, j]] for j in range(scores.shape[1])]
    return columns[0] if len(columns) == 1 else columns


def answer_scores(answers: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
    if any(OUTPUT_NAME not in answer for answer in answers):
        raise InferenceError(f"the server answered without a {OUTPUT_NAME!r} output")
    return [answer[OUTPUT_NAME] for answer in answers]


class ScoringCore:
    """Per-model state of a client that tokenizes itself: manifest, tokenizer, request limits, and
    the token model it sends to (`model`, `version`)."""

    tokenize = "client"

    def __init__(
        self,
        manifest: ModelManifest,
        tokenizer: Tokenizer,
        *,
        max_batch_size: int,
        max_request_tokens: int,
        max_text_bytes: int = MAX_TEXT_BYTES,
        model: str = "",
        version: str = "",
    ) -> None:
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_request_tokens = max_request_tokens
        self.max_text_bytes = max_text_bytes
        self.model, self.version = model or manifest.name, version

    def plan(
        self,
        pairs: Any,
        *,
        max_length: int | None,
        query_max_length: int | None,
        batch_size: int | None,
        **kwargs: Any,
    ) -> ScoringPlan:
        """Validate, encode and pack a compute_score call."""
        with caller_errors():
            pairs = normalize_pairs(pairs, max_text_bytes=self.max_text_bytes)
            batch_size = positive_int(batch_size, "batch_size")
            options = call_options(self.manifest, max_length, query_max_length, kwargs)
            prepared = prepare_pairs(self.tokenizer, self.manifest, pairs, options)
        batches = prepared.batches(
            self.manifest,
            max_pairs=min(batch_size or self.max_batch_size, self.max_batch_size),
            max_tokens=self.max_request_tokens,
        )
        return ScoringPlan(prepared, batches, options)

    @staticmethod
    def collect(plan: ScoringPlan, answers: Sequence[dict[str, np.ndarray]], normalize: bool) -> Scores:
        """Scores in input order: a flat list, or one list per cutoff layer when several."""
        return to_columns(plan.prepared.pair_scores(plan.batches, answer_scores(answers)), normalize)
