"""AsyncRerankerClient: the same API as RerankerClient for asyncio code (tritonclient's aio clients)."""
from __future__ import annotations

import asyncio
from typing import Any, Optional, Sequence

import numpy as np

from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES
from reranker_core.packing import RequestBatch
from reranker_client.client import RerankResult, manifest_from_config, rank, rerank_pairs, single_column
from reranker_client.errors import InvalidInputError, ModelNotReadyError, ServerUnavailableError
from reranker_core.manifest import ModelManifest
from reranker_client.retry import RetryPolicy
from reranker_client.scoring import Scores, ScoringCore
from reranker_client.tokenizer_source import load_tokenizer
from reranker_client.transport import OUTPUT_NAME, map_exception, request_inputs


class AsyncRerankerClient:
    """Use `client = await AsyncRerankerClient.connect(url, model, protocol)`, then
    `await client.compute_score(...)` / `await client.rerank(...)`; `await client.close()`."""

    def __init__(self, url: str, model: str, protocol: str, module: Any, client: Any, core: ScoringCore,
                 *, timeout_s: Optional[float], max_concurrency: int, headers: Optional[dict[str, str]],
                 retry: RetryPolicy) -> None:
        self.url, self.model, self.protocol = url, model, protocol
        self._module, self._client, self._core = module, client, core
        self._timeout_s = timeout_s
        self._semaphore = asyncio.Semaphore(max(1, max_concurrency))
        self._headers = headers or {}
        self._retry = retry

    @classmethod
    async def connect(cls, url: str = "localhost:8001", model: str = "bge-reranker-v2-m3",
                      protocol: str = "grpc", *, tokenizer_path: Optional[str] = None,
                      model_repository: Optional[str] = None, timeout_s: Optional[float] = 120.0,
                      max_concurrency: int = 4, max_request_tokens: int = CLIENT_MAX_REQUEST_TOKENS,
                      max_text_bytes: int = MAX_TEXT_BYTES,
                      headers: Optional[dict[str, str]] = None,
                      retry: Optional[RetryPolicy] = None) -> "AsyncRerankerClient":
        """Connect and read the model's manifest; arguments as for RerankerClient."""
        retry = retry or RetryPolicy()
        if protocol == "grpc":
            import tritonclient.grpc.aio as module
            client = module.InferenceServerClient(url=url)
        elif protocol == "http":
            import tritonclient.http.aio as module
            client = module.InferenceServerClient(url=url, conn_timeout=timeout_s or 600.0)
        else:
            raise InvalidInputError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        try:
            config = await retry.acall(lambda _left: cls._model_config(client, protocol, url, model, headers or {}))
            manifest, max_batch_size = manifest_from_config(config, model)
            tokenizer = load_tokenizer(manifest, tokenizer_path=tokenizer_path,
                                       model_repository=model_repository)
        except BaseException:
            await client.close()
            raise
        core = ScoringCore(manifest, tokenizer, max_batch_size=max_batch_size,
                           max_request_tokens=max_request_tokens, max_text_bytes=max_text_bytes)
        return cls(url, model, protocol, module, client, core, timeout_s=timeout_s,
                   max_concurrency=max_concurrency, headers=headers, retry=retry)

    @staticmethod
    async def _model_config(client: Any, protocol: str, url: str, model: str,
                            headers: dict[str, str]) -> dict[str, Any]:
        try:
            if not await client.is_server_live(headers=headers):
                raise ServerUnavailableError(f"Triton server at {url} is not live")
            if not await client.is_model_ready(model, headers=headers):
                raise ModelNotReadyError(f"model {model!r} is not ready on {url} "
                                         "(not found, still loading or failed to load)")
            if protocol == "grpc":
                return (await client.get_model_config(model, headers=headers, as_json=True))["config"]
            return await client.get_model_config(model, headers=headers)
        except Exception as exc:
            raise map_exception(exc, url, model) from exc

    @property
    def manifest(self) -> ModelManifest:
        return self._core.manifest

    async def _infer(self, batch: RequestBatch, parameters: Optional[dict[str, Any]],
                     timeout: Optional[float]) -> np.ndarray:
        kwargs: dict[str, Any] = {"parameters": parameters, "headers": self._headers}
        if self.protocol == "grpc":
            kwargs["client_timeout"] = timeout
            outputs = [self._module.InferRequestedOutput(OUTPUT_NAME)]
        else:
            outputs = [self._module.InferRequestedOutput(OUTPUT_NAME, binary_data=True)]
        async with self._semaphore:
            try:
                result = await self._client.infer(self.model, request_inputs(self._module, batch),
                                                  outputs=outputs, **kwargs)
            except Exception as exc:
                raise map_exception(exc, self.url, self.model) from exc
        return result.as_numpy(OUTPUT_NAME)

    async def compute_score(self, sentence_pairs: Any, normalize: bool = False,
                            max_length: Optional[int] = None, query_max_length: Optional[int] = None,
                            batch_size: Optional[int] = None, **kwargs: Any) -> Scores:
        """See RerankerClient.compute_score."""
        plan = self._core.plan(sentence_pairs, max_length=max_length, query_max_length=query_max_length,
                               batch_size=batch_size, **kwargs)

        async def attempt(left: Optional[float]) -> list[np.ndarray]:
            timeout = self._timeout_s if left is None else min(left, self._timeout_s or left)
            return list(await asyncio.gather(*(self._infer(b, plan.parameters or None, timeout)
                                               for b in plan.batches)))

        # Idempotent: the whole call is retried, so callers never get partial results.
        outputs = await self._retry.acall(attempt)
        return self._core.collect(plan, outputs, normalize)

    async def rerank(self, query: str, passages: Sequence[str], top_n: Optional[int] = None,
                     normalize: bool = True, **kwargs: Any) -> list[RerankResult]:
        """See RerankerClient.rerank."""
        pairs = rerank_pairs(query, passages, top_n, self._core.max_text_bytes)
        scores = single_column(await self.compute_score(pairs, normalize=normalize, **kwargs))
        return rank(passages, scores, top_n)

    async def close(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> "AsyncRerankerClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
