"""AsyncRerankerClient: RerankerClient's API for asyncio code (tritonclient's aio clients).

It runs the same flows (reranker_client.session / ops), the same error mapping, retry policy and
timeouts as the sync client; only the transport differs."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from reranker_client.error_mapping import AttemptTimeout
from reranker_client.ops import Flow, InferAll, ModelConfig, ModelReady, Op, adrive
from reranker_client.retry import RetryPolicy
from reranker_client.scoring import Scores
from reranker_client.session import (
    ClientState,
    Core,
    RerankResult,
    ScoringOptions,
    connect_flow,
    infer_flow,
    rank,
    rerank_pairs,
    single_column,
)
from reranker_client.settings import ConnectionSettings
from reranker_client.wire import TritonCalls
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES

T = TypeVar("T")


class AsyncTransport:
    """transport.Transport for asyncio: the same operations, awaited; requests of one call run
    concurrently (at most settings.concurrency at a time)."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.calls = TritonCalls(settings, asynchronous=True)
        self._client = self.calls.make_client()
        self._semaphore = asyncio.Semaphore(settings.concurrency)

    async def call(self, make_flow: Callable[[], Flow[T]], retry: RetryPolicy) -> T:
        async def attempt(left: float | None) -> T:
            return await self.run(make_flow(), self.settings.attempt_timeout(left))

        return await retry.acall(attempt)

    async def run(self, flow: Flow[T], timeout: float | None) -> T:
        return await adrive(
            flow, lambda op: self.execute(op, timeout), self.settings.url, self.settings.model
        )

    async def execute(self, op: Op, timeout: float | None) -> Any:
        if isinstance(op, InferAll):  # each request has its own timeout (as in the sync transport)
            return await self.infer_all(op, timeout)
        return await self._bounded(getattr(self, op.method)(op, timeout), timeout)

    @staticmethod
    async def _bounded(awaitable: Any, timeout: float | None) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError:
            raise AttemptTimeout(f"no answer within {timeout:.3g}s") from None

    # -- operations --------------------------------------------------------------------------
    async def server_live(self, op: Op, timeout: float | None) -> bool:
        return await self._client.is_server_live(**self.calls.common(timeout))

    async def model_ready(self, op: ModelReady, timeout: float | None) -> bool:
        return await self._client.is_model_ready(op.model, op.version, **self.calls.common(timeout))

    async def repository_index(self, op: Op, timeout: float | None) -> Any:
        return await self._client.get_model_repository_index(**self.calls.index_kwargs(timeout))

    async def model_config(self, op: ModelConfig, timeout: float | None) -> Any:
        return await self._client.get_model_config(op.model, op.version, **self.calls.config_kwargs(timeout))

    async def infer_all(self, op: InferAll, timeout: float | None) -> list[dict[str, Any]]:
        async def one(request):
            async with self._semaphore:
                result = await self._bounded(
                    self._client.infer(
                        op.model, self.calls.inputs(request), **self.calls.infer_kwargs(op, request, timeout)
                    ),
                    timeout,
                )
            return self.calls.result_arrays(result, request)

        tasks = [asyncio.ensure_future(one(r)) for r in op.requests]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # one failed: the others are not needed (the call is retried whole)
                task.cancel()

    async def close(self) -> None:
        await self._client.close()


class AsyncRerankerClient(ClientState):
    """Use `client = await AsyncRerankerClient.connect(url, model, protocol, ...)` (the arguments of
    RerankerClient), then `await client.compute_score(...)` / `await client.rerank(...)`;
    `await client.close()` or `async with`."""

    def __init__(
        self, settings: ConnectionSettings, transport: AsyncTransport, core: Core, retry: RetryPolicy
    ) -> None:
        self.url, self.model, self.protocol = settings.url, settings.model, settings.protocol
        self._settings, self._transport, self._core, self._retry = settings, transport, core, retry

    @classmethod
    async def connect(
        cls,
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
    ) -> AsyncRerankerClient:
        """Connect and read the model's manifest; arguments as for RerankerClient."""
        settings = ConnectionSettings.create(
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
        )
        options = ScoringOptions(
            tokenizer_path, model_repository, max_request_tokens, max_text_bytes, tokenize
        )
        retry = retry or RetryPolicy()
        transport = AsyncTransport(settings)
        try:
            core = await transport.call(lambda: connect_flow(settings, options), retry)
        except BaseException:
            await transport.close()
            raise
        return cls(settings, transport, core, retry)

    async def compute_score(
        self,
        sentence_pairs: Any,
        normalize: bool = False,
        max_length: int | None = None,
        query_max_length: int | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> Scores:
        """See RerankerClient.compute_score."""
        plan = self._core.plan(
            sentence_pairs,
            max_length=max_length,
            query_max_length=query_max_length,
            batch_size=batch_size,
            **kwargs,
        )
        requests = plan.requests
        answers = await self._transport.call(lambda: infer_flow(self._core, requests), self._retry)
        return self._core.collect(plan, answers, normalize)

    async def rerank(
        self,
        query: str,
        passages: Sequence[str],
        top_n: int | None = None,
        normalize: bool = True,
        **kwargs: Any,
    ) -> list[RerankResult]:
        """See RerankerClient.rerank."""
        pairs = rerank_pairs(query, passages, top_n, self._core.max_text_bytes)
        scores = single_column(await self.compute_score(pairs, normalize=normalize, **kwargs))
        return rank(passages, scores, top_n)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncRerankerClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
