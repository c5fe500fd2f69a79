"""RerankerClient: FlagEmbedding's compute_score and a rerank call, served by Triton."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES
from reranker_client.errors import InvalidInputError, ModelNotReadyError, caller_errors
from reranker_core.texts import check_text, positive_int
from reranker_core.manifest import ModelManifest
from reranker_client.retry import RetryPolicy
from reranker_client.scoring import Scores, ScoringCore
from reranker_client.tokenizer_source import load_tokenizer
from reranker_client.transport import Transport, make_transport, manifest_json_from_config


@dataclass(frozen=True)
class RerankResult:
    index: int       # position of the passage in the list given to rerank()
    score: float
    passage: str


def manifest_from_config(config: dict[str, Any], model: str) -> tuple[ModelManifest, int]:
    """The manifest and max_batch_size of a served model's config."""
    text = manifest_json_from_config(config)
    if not text:
        raise ModelNotReadyError(f"model {model!r} has no reranker manifest in its config: "
                                 "it was not exported by this project")
    return ModelManifest.from_json(text), int(config.get("max_batch_size") or 1)


def rank(passages: Sequence[str], scores: list[float], top_n: Optional[int]) -> list[RerankResult]:
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    if top_n is not None:
        order = order[:top_n]
    return [RerankResult(i, scores[i], passages[i]) for i in order]


def rerank_pairs(query: Any, passages: Any, top_n: Any, max_text_bytes: int) -> list[list[str]]:
    with caller_errors():
        check_text(query, "query", max_text_bytes)
        positive_int(top_n, "top_n")
    if isinstance(passages, (str, bytes)) or not isinstance(passages, Sequence) or not passages:
        raise InvalidInputError("passages must be a non-empty list of strings")
    return [[query, p] for p in passages]


def single_column(scores: Scores) -> list[float]:
    if scores and isinstance(scores[0], list):
        raise InvalidInputError("rerank needs one score per passage: give a single cutoff layer")
    return scores  # type: ignore[return-value]


class RerankerClient:
    """Scores (query, passage) pairs with a reranker served by Triton.

    `url` is host:port of the server's gRPC (default 8001) or HTTP (8000) endpoint. The model's
    family, limits and tokenizer come from its config on the server (`tokenizer_path` or
    `model_repository` point at the tokenizer when the export source is not reachable).
    `timeout_s` bounds each request attempt; `retry` (default RetryPolicy(): 3 attempts, backoff
    0.2 s doubling to 2 s, no overall deadline) re-sends a call that failed because the server or
    the model's backend process was unavailable; RetryPolicy.none() disables retries.
    """

    def __init__(self, url: str = "localhost:8001", model: str = "bge-reranker-v2-m3",
                 protocol: str = "grpc", *, tokenizer_path: Optional[str] = None,
                 model_repository: Optional[str] = None, timeout_s: Optional[float] = 120.0,
                 max_concurrency: int = 4, max_request_tokens: int = CLIENT_MAX_REQUEST_TOKENS,
                 max_text_bytes: int = MAX_TEXT_BYTES,
                 headers: Optional[dict[str, str]] = None, retry: Optional[RetryPolicy] = None) -> None:
        self.url, self.model, self.protocol = url, model, protocol
        self._transport: Transport = make_transport(url, protocol, timeout_s=timeout_s,
                                                    concurrency=max_concurrency, headers=headers,
                                                    retry=retry)
        try:
            config = self._transport.retry.call(lambda _remaining: self._transport.model_config(model))
            manifest, max_batch_size = manifest_from_config(config, model)
            tokenizer = load_tokenizer(manifest, tokenizer_path=tokenizer_path,
                                       model_repository=model_repository)
        except BaseException:
            self._transport.close()
            raise
        self._core = ScoringCore(manifest, tokenizer, max_batch_size=max_batch_size,
                                 max_request_tokens=max_request_tokens, max_text_bytes=max_text_bytes)

    @property
    def manifest(self) -> ModelManifest:
        return self._core.manifest

    def compute_score(self, sentence_pairs: Any, normalize: bool = False, max_length: Optional[int] = None,
                      query_max_length: Optional[int] = None, batch_size: Optional[int] = None,
                      **kwargs: Any) -> Scores:
        """FlagEmbedding's compute_score: one score per pair in input order (raw logits, or
        sigmoid-normalised with normalize=True). LLM families take their extra arguments
        (prompt, cutoff_layers, compress_ratio, compress_layers); several cutoff layers return one
        list of scores per layer, in ascending layer order."""
        plan = self._core.plan(sentence_pairs, max_length=max_length, query_max_length=query_max_length,
                               batch_size=batch_size, **kwargs)
        outputs = self._transport.infer_many(self.model, plan.batches, plan.parameters or None)
        return self._core.collect(plan, outputs, normalize)

    def rerank(self, query: str, passages: Sequence[str], top_n: Optional[int] = None,
               normalize: bool = True, **kwargs: Any) -> list[RerankResult]:
        """Passages sorted by relevance to `query` (best first), `top_n` of them if given."""
        pairs = rerank_pairs(query, passages, top_n, self._core.max_text_bytes)
        scores = single_column(self.compute_score(pairs, normalize=normalize, **kwargs))
        return rank(passages, scores, top_n)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> "RerankerClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
