"""RerankerClient: FlagEmbedding's compute_score and a rerank call, served by Triton."""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Sequence
from typing import Any

from reranker_client.retry import RetryPolicy
from reranker_client.scoring import Scores
from reranker_client.session import (
    ClientState,
    RerankResult,
    ScoringOptions,
    connect_flow,
    infer_flow,
    rank,
    rerank_pairs,
    single_column,
)
from reranker_client.settings import ConnectionSettings
from reranker_client.transport import Transport
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES

__all__ = ["RerankerClient", "RerankResult"]


class RerankerClient(ClientState):
    """Scores (query, passage) pairs with a reranker served by Triton.

    `url` is host:port of the server's gRPC (default 8001) or HTTP (8000) endpoint, or of several
    replicas: a comma-separated list ("a:8001,b:8001") or a DNS name whose addresses are the
    replicas ("dns:///triton-headless.ns.svc:8001", resolved again every `dns_refresh_s`). Each
    request goes to the replica expected to answer soonest (power of two choices) among those
    serving the manifest this client connected with; a replica that fails is left out until a probe
    finds it back, and the request is sent to another one (`endpoints` shows the pool). `model_version`
    picks a version of `model` (default: the server's version policy). The model's family, limits
    and tokenizer come from its config on the server.

    Tokenization: `tokenize="client"` tokenizes here with the tokenizer the model was exported
    with (from `tokenizer_path`, `model_repository`, the export source directory or the hub) and
    sends token ids; `"server"` sends UTF-8 text to the model's text model (`<model>-text`), which
    tokenizes identically; `"auto"` (default) tokenizes here when that tokenizer is at hand
    without downloading it, else sends text. Scores are the same either way.

    Reliability: `timeout_s` bounds every request of an attempt; `retry` (default RetryPolicy():
    3 attempts, backoff 0.2 s doubling to 2 s, no overall deadline) re-sends a call that failed
    because the server or the model's backend process was unavailable or the model was being
    reloaded; RetryPolicy.none() disables retries.

    Security: `headers` go with every request (e.g. an Authorization header for a proxy in front
    of Triton); `ssl=True` with `root_certificates` (CA PEM file) and, for mutual TLS,
    `private_key` + `certificate_chain` (PEM files); HTTPS also takes `insecure=True` (no
    certificate verification, for tests) or `ssl_context`.
    """

    def __init__(
        self,
        url: str = "localhost:8001",
        model: str = "bge-reranker-v2-m3",
        protocol: str = "grpc",
        *,
        model_version: None | int | str = None,
        tokenizer_path: str | None = None,
        model_repository: str | None = None,
        timeout_s: float | None = 120.0,
        max_concurrency: int = 4,
        max_request_tokens: int = CLIENT_MAX_REQUEST_TOKENS,
        max_text_bytes: int = MAX_TEXT_BYTES,
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        ssl: bool = False,
        root_certificates: str | None = None,
        private_key: str | None = None,
        certificate_chain: str | None = None,
        insecure: bool = False,
        ssl_context: ssl_module.SSLContext | None = None,
        tokenize: str = "auto",
        dns_refresh_s: float = 10.0,
    ) -> None:
        self.url, self.model, self.protocol = url, model, protocol
        self._settings = ConnectionSettings.create(
            url,
            protocol,
            model,
            model_version=model_version,
            timeout_s=timeout_s,
            concurrency=max_concurrency,
            headers=headers,
            ssl=ssl,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            insecure=insecure,
            ssl_context=ssl_context,
            dns_refresh_s=dns_refresh_s,
        )
        options = ScoringOptions(
            tokenizer_path, model_repository, max_request_tokens, max_text_bytes, tokenize
        )
        self._retry = retry or RetryPolicy()
        self._transport = Transport(self._settings)
        try:
            self._core = self._transport.call(lambda: connect_flow(self._settings, options), self._retry)
            self._transport.connected()
        except BaseException:
            self._transport.close()
            raise

    def compute_score(
        self,
        sentence_pairs: Any,
        normalize: bool = False,
        max_length: int | None = None,
        query_max_length: int | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Scores:
        """FlagEmbedding's compute_score: one score per pair in input order (raw logits, or
        sigmoid-normalised with normalize=True). LLM families take their extra arguments
        (prompt, cutoff_layers, compress_ratio, compress_layers); several cutoff layers return one
        list of scores per layer, in ascending layer order."""
        plan = self._core.plan(
            sentence_pairs,
            max_length=max_length,
            query_max_length=query_max_length,
            batch_size=batch_size,
            **kwargs,
        )
        requests = plan.requests
        answers = self._transport.call(lambda: infer_flow(self._core, requests), self._retry)
        return self._core.collect(plan, answers, normalize)

    def rerank(
        self,
        query: str,
        passages: Sequence[str],
        top_n: int | None = None,
        normalize: bool = True,
        **kwargs: Any,
    ) -> list[RerankResult]:
        """Passages sorted by relevance to `query` (best first), `top_n` of them if given."""
        pairs = rerank_pairs(query, passages, top_n, self._core.max_text_bytes)
        scores = single_column(self.compute_score(pairs, normalize=normalize, **kwargs))
        return rank(passages, scores, top_n)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> RerankerClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
