"""What both clients do around the transport, without I/O: connect (probe the model, read its
manifest, load the tokenizer) and score (send the planned requests)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from reranker_client.batching import DEFAULT_MAX_REQUEST_TOKENS
from reranker_client.errors import InvalidInputError, ModelNotReadyError
from reranker_client.inputs import DEFAULT_MAX_TEXT_BYTES, check_text, positive_int
from reranker_client.manifest import MANIFEST_PARAMETER, ModelManifest
from reranker_client.ops import Flow, InferAll, InferRequest, probe_model
from reranker_client.scoring import Scores, ScoringCore
from reranker_client.settings import ConnectionSettings
from reranker_client.tokenizer_source import load_tokenizer


@dataclass(frozen=True)
class RerankResult:
    index: int       # position of the passage in the list given to rerank()
    score: float
    passage: str


@dataclass(frozen=True)
class ScoringOptions:
    """Client-side options of both clients (see RerankerClient)."""
    tokenizer_path: Optional[str] = None
    model_repository: Optional[str] = None
    max_request_tokens: int = DEFAULT_MAX_REQUEST_TOKENS
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES


def manifest_json_from_config(config: dict[str, Any]) -> Optional[str]:
    param = (config.get("parameters") or {}).get(MANIFEST_PARAMETER)
    return param.get("string_value") if isinstance(param, dict) else None


def manifest_from_config(config: dict[str, Any], model: str) -> tuple[ModelManifest, int]:
    """The manifest and max_batch_size of a served model's config."""
    text = manifest_json_from_config(config)
    if not text:
        raise ModelNotReadyError(f"model {model!r} has no reranker manifest in its config: "
                                 "it was not exported by this project")
    return ModelManifest.from_json(text), int(config.get("max_batch_size") or 1)


def connect_flow(settings: ConnectionSettings, options: ScoringOptions) -> Flow[ScoringCore]:
    """Probe the model, read its manifest and load the tokenizer it was exported with."""
    positive_int(options.max_request_tokens, "max_request_tokens")
    positive_int(options.max_text_bytes, "max_text_bytes")
    config = yield from probe_model(settings.url, settings.model, settings.model_version)
    manifest, max_batch_size = manifest_from_config(config, settings.model)
    tokenizer = load_tokenizer(manifest, tokenizer_path=options.tokenizer_path,
                               model_repository=options.model_repository)
    return ScoringCore(manifest, tokenizer, max_batch_size=max_batch_size,
                       max_request_tokens=options.max_request_tokens, max_text_bytes=options.max_text_bytes)


def infer_flow(settings: ConnectionSettings, requests: Sequence[InferRequest]) -> Flow[list[dict[str, Any]]]:
    """All requests' outputs, or one error (the caller retries the whole flow: never partial results)."""
    return (yield InferAll(settings.model, settings.model_version, tuple(requests)))


def rank(passages: Sequence[str], scores: list[float], top_n: Optional[int]) -> list[RerankResult]:
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    if top_n is not None:
        order = order[:top_n]
    return [RerankResult(i, scores[i], passages[i]) for i in order]


def rerank_pairs(query: Any, passages: Any, top_n: Any, max_text_bytes: int) -> list[list[str]]:
    check_text(query, "query", max_text_bytes)
    if isinstance(passages, (str, bytes)) or not isinstance(passages, Sequence) or not passages:
        raise InvalidInputError("passages must be a non-empty list of strings")
    positive_int(top_n, "top_n")
    return [[query, p] for p in passages]


def single_column(scores: Scores) -> list[float]:
    if scores and isinstance(scores[0], list):
        raise InvalidInputError("rerank needs one score per passage: give a single cutoff layer")
    return scores  # type: ignore[return-value]
