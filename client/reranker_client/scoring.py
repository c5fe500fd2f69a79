"""What compute_score does around the network call: check arguments, encode and pack with the
shared core, and turn the server's score matrices back into FlagEmbedding's return shapes.
Shared by the sync and asyncio clients."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import numpy as np
from tokenizers import Tokenizer

from reranker_client.errors import InvalidInputError, caller_errors
from reranker_core.limits import MAX_TEXT_BYTES
from reranker_core.manifest import ModelManifest
from reranker_core.options import TOP_N, ScoreOptions, parse_options
from reranker_core.packing import RequestBatch
from reranker_core.pipeline import PreparedPairs, normalized, prepare_pairs
from reranker_core.texts import normalize_pairs, positive_int

Scores = Union[list[float], list[list[float]]]


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


class ScoringCore:
    """Per-model state of a client: manifest, tokenizer, request limits."""

    def __init__(self, manifest: ModelManifest, tokenizer: Tokenizer, *, max_batch_size: int,
                 max_request_tokens: int, max_text_bytes: int = MAX_TEXT_BYTES) -> None:
        self.manifest = manifest
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_request_tokens = max_request_tokens
        self.max_text_bytes = max_text_bytes

    def plan(self, pairs: Any, *, max_length: Optional[int], query_max_length: Optional[int],
             batch_size: Optional[int], **kwargs: Any) -> ScoringPlan:
        """Validate, encode and pack a compute_score call."""
        if TOP_N in kwargs:
            raise InvalidInputError("top_n is an argument of rerank(), not of compute_score()")
        with caller_errors():
            pairs = normalize_pairs(pairs, max_text_bytes=self.max_text_bytes)
            batch_size = positive_int(batch_size, "batch_size")
            options = parse_options({"max_length": max_length, "query_max_length": query_max_length,
                                     **kwargs}, self.manifest)
            prepared = prepare_pairs(self.tokenizer, self.manifest, pairs, options)
        batches = prepared.batches(self.manifest, max_pairs=min(batch_size or self.max_batch_size,
                                                                 self.max_batch_size),
                                   max_tokens=self.max_request_tokens)
        return ScoringPlan(prepared, batches, options)

    @staticmethod
    def collect(plan: ScoringPlan, outputs: Sequence[np.ndarray], normalize: bool) -> Scores:
        """Scores in input order: a flat list, or one list per cutoff layer when several."""
        scores = normalized(plan.prepared.pair_scores(plan.batches, outputs), normalize)
        columns = [[float(v) for v in scores[:, j]] for j in range(scores.shape[1])]
        return columns[0] if len(columns) == 1 else columns
