"""The ways in: score one query's passages through the SDK or a TEI / Cohere rerank endpoint.

Every way returns sigmoid-normalised scores in input order (TEI's and Cohere's default), so that
scores of one model agree across ways in. With several cutoff layers, the deepest one ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from reranker_client import RerankerClient, RerankerError
from reranker_eval.configs import SDK_VIAS, Configuration, api_key
from reranker_eval.errors import EvalError


class Scorer(Protocol):
    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """One request: a score per passage, in input order."""

    def close(self) -> None: ...


class SdkScorer:
    """reranker_client.RerankerClient over gRPC or HTTP, token or text path."""

    def __init__(self, config: Configuration) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {api_key(config)}"} if config.api_key_env else None
        try:
            self.client = RerankerClient(
                config.url,
                config.model or "",
                config.via,
                tokenizer_path=config.tokenizer_path,
                model_repository=config.model_repository,
                timeout_s=config.timeout_s,
                headers=headers,
                tokenize=config.tokenize,
            )
        except RerankerError as exc:
            raise EvalError(f"{config.label}: cannot use {config.model!r} at {config.url}: {exc}") from None

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        scores = self.client.compute_score(
            [(query, p) for p in passages], normalize=True, **self.config.option_dict
        )
        deepest = scores[-1] if scores and isinstance(scores[0], list) else scores
        return [float(s) for s in deepest]

    def close(self) -> None:
        self.client.close()


class HttpScorer:
    """POST to a TEI (`/rerank` {query, texts}) or Cohere (`/v1/rerank` {model, query, documents})
    endpoint; scoring options go as extra fields (this project's API reads them)."""

    def __init__(self, config: Configuration, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {api_key(config)}"} if config.api_key_env else {}
        self.http = httpx.Client(timeout=config.timeout_s, headers=headers, transport=transport)

    def body(self, query: str, passages: Sequence[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, **self.config.option_dict}
        if self.config.via == "tei":
            body["texts"] = list(passages)
        else:
            body["documents"] = list(passages)
            body["top_n"] = len(passages)
        if self.config.model:
            body["model"] = self.config.model
        return body

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        url = self.config.url
        try:
            response = self.http.post(url, json=self.body(query, passages))
        except httpx.HTTPError as exc:
            raise EvalError(f"{self.config.label}: POST {url} failed: {exc}") from None
        if response.status_code != 200:
            raise EvalError(
                f"{self.config.label}: POST {url} -> HTTP {response.status_code}: {response.text[:500]}"
            )
        try:
            answer = response.json()
            items = answer if self.config.via == "tei" else answer["results"]
            field = "score" if self.config.via == "tei" else "relevance_score"
            scores: list[float | None] = [None] * len(passages)
            for item in items:
                scores[int(item["index"])] = float(item[field])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise EvalError(f"{self.config.label}: unexpected answer from {url}: {exc!r}") from None
        if any(s is None for s in scores):
            raise EvalError(f"{self.config.label}: {url} did not score every passage")
        return [float(s) for s in scores if s is not None]

    def close(self) -> None:
        self.http.close()


def open_scorer(config: Configuration) -> Scorer:
    """The scorer of a configuration's way in."""
    return SdkScorer(config) if config.via in SDK_VIAS else HttpScorer(config)
