"""compute_score against the server-side text model (`<name>-text`): the client sends UTF-8 text and
the options, the server tokenizes exactly as the client would and scores with the token model.
Same checks and return shapes as ScoringCore (client-side tokenization), so results are the same."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reranker_client.errors import InferenceError, caller_errors
from reranker_client.ops import InferRequest, Tensor
from reranker_client.scoring import OUTPUT_NAME, Scores, call_options, to_columns
from reranker_core.limits import MAX_TEXT_BYTES, TEXT_MODEL_MAX_PAIRS
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import PASSAGES, QUERIES, QUERY
from reranker_core.texts import normalize_pairs, positive_int

DEFAULT_MAX_PAIRS = TEXT_MODEL_MAX_PAIRS  # the text model's max_pairs config parameter, when absent
DEFAULT_CHUNK_PAIRS = 256  # pairs per request unless batch_size / max_pairs say fewer
MAX_REQUEST_TEXT_BYTES = 16 << 20  # UTF-8 bytes of text per request


@dataclass
class TextPlan:
    count: int
    chunks: list[tuple[int, int]]  # [start, end) of the caller's pairs per request
    requests: tuple[InferRequest, ...]


def _bytes_tensor(name: str, texts: Sequence[str]) -> Tensor:
    return Tensor(name, "BYTES", np.array([t.encode("utf-8") for t in texts], dtype=np.object_))


def config_int(config: dict[str, Any], key: str, default: int) -> int:
    """An integer `parameters` entry of a model config (Triton keeps them as strings)."""
    param = (config.get("parameters") or {}).get(key)
    value = param.get("string_value") if isinstance(param, dict) else None
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


class TextScoringCore:
    """Per-model state of a client that lets the server tokenize."""

    tokenize = "server"

    def __init__(
        self,
        manifest: ModelManifest,
        model: str,
        version: str,
        *,
        max_pairs: int = DEFAULT_MAX_PAIRS,
        max_text_bytes: int = MAX_TEXT_BYTES,
        server_max_text_bytes: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.model, self.version = model, version
        self.max_pairs = max(1, max_pairs)
        # A text the server would refuse is refused here, before anything is sent.
        self.max_text_bytes = min(max_text_bytes, server_max_text_bytes or max_text_bytes)

    def plan(
        self,
        pairs: Any,
        *,
        max_length: int | None,
        query_max_length: int | None,
        batch_size: int | None,
        **kwargs: Any,
    ) -> TextPlan:
        """Validate a compute_score call and split it into text-model requests."""
        with caller_errors():
            pairs = normalize_pairs(pairs, max_text_bytes=self.max_text_bytes)
            limit = min(self.max_pairs, positive_int(batch_size, "batch_size") or DEFAULT_CHUNK_PAIRS)
            parameters = call_options(self.manifest, max_length, query_max_length, kwargs).text_parameters()
        chunks, start, size = [], 0, 0
        for i, (query, passage) in enumerate(pairs):
            size += len(query.encode("utf-8")) + len(passage.encode("utf-8"))
            if i > start and (i - start >= limit or size > MAX_REQUEST_TEXT_BYTES):
                chunks.append((start, i))
                start, size = i, len(query.encode("utf-8")) + len(passage.encode("utf-8"))
        chunks.append((start, len(pairs)))
        requests = tuple(self._request(pairs[a:b], parameters) for a, b in chunks)
        return TextPlan(len(pairs), chunks, requests)

    @staticmethod
    def _request(pairs: Sequence[tuple[str, str]], parameters: dict[str, Any] | None) -> InferRequest:
        queries = [q for q, _ in pairs]
        passages = _bytes_tensor(PASSAGES, [p for _, p in pairs])
        if all(q == queries[0] for q in queries):  # one query for all: the rerank shape
            inputs = (_bytes_tensor(QUERY, queries[:1]), passages)
        else:
            inputs = (_bytes_tensor(QUERIES, queries), passages)
        return InferRequest(inputs, (OUTPUT_NAME,), parameters)

    @staticmethod
    def collect(plan: TextPlan, answers: Sequence[dict[str, np.ndarray]], normalize: bool) -> Scores:
        """Scores in input order, as ScoringCore.collect returns them."""
        blocks = []
        for (start, end), answer in zip(plan.chunks, answers):
            scores = answer.get(OUTPUT_NAME)
            if scores is None:
                raise InferenceError(f"the server answered without a {OUTPUT_NAME!r} output")
            scores = np.asarray(scores, dtype=np.float64)
            scores = scores.reshape(-1, end - start) if scores.size else scores.reshape(0, end - start)
            blocks.append(scores)
        widths = {b.shape[0] for b in blocks}
        if len(widths) != 1 or 0 in widths:
            raise InferenceError(
                f"the server answered with score rows {sorted(widths)}; expected one per layer"
            )
        return to_columns(np.concatenate(blocks, axis=1).T, normalize)
