"""AsyncRerankerClient: RerankerClient's API for asyncio code (tritonclient's aio clients).

It runs the same flows (reranker_client.session / ops), the same error mapping, retry policy and
timeouts as the sync client; only the transport differs."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from reranker_client.endpoint_pool import make_pool, no_replica, pin_manifest, probe_flow, probe_timeout
from reranker_client.errors import AttemptTimeout, RerankerError, map_exception
from reranker_client.ops import Flow, InferAll, InferRequest, ModelConfig, ModelReady, Op, adrive
from reranker_client.retry import RetryPolicy, is_retryable
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
from reranker_core.endpoints import Endpoint, EndpointStatus, refresh_membership
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES

T = TypeVar("T")


class AsyncTransport:
    """transport.Transport for asyncio: the same operations, awaited, one tritonclient aio client
    per endpoint; requests of one call run concurrently (at most settings.concurrency at a time),
    each on the replica the pool picks for it."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.calls = TritonCalls(settings, asynchronous=True)
        self.pool = make_pool(settings)
        self._clients: dict[str, Any] = {}
        self._semaphore = asyncio.Semaphore(settings.concurrency)
        self._maintaining: asyncio.Future | None = None

    def endpoints(self) -> list[EndpointStatus]:
        return self.pool.status()

    async def call(self, make_flow: Callable[[], Flow[T]], retry: RetryPolicy) -> T:
        async def attempt(left: float | None) -> T:
            await self.maintain()
            return await self.run(make_flow, self.settings.attempt_timeout(left))

        return await retry.acall(attempt)

    def connected(self) -> None:
        """The client read its manifest: requests go only to replicas serving that manifest."""
        pin_manifest(self.pool, self.settings.model)

    async def maintain(self) -> None:
        """Resolve a dns:/// name when due and probe the endpoints due (one round at a time, shared
        by the calls that arrive meanwhile)."""
        if self._maintaining is None or self._maintaining.done():
            if not self.pool.resolve_due() and not self.pool.endpoints_due():
                return
            self._maintaining = asyncio.ensure_future(self._maintain())
        await asyncio.shield(self._maintaining)

    async def _maintain(self) -> None:
        await refresh_membership(self.pool, self._clients)
        await asyncio.gather(*(self._probe(e) for e in self.pool.probes_due()))

    async def _probe(self, endpoint: Endpoint) -> None:
        try:
            found = await adrive(
                probe_flow(self.settings, endpoint.address),
                lambda op: self.execute(endpoint, op, probe_timeout(self.settings)),
                endpoint.address,
                self.settings.model,
            )
        except RerankerError as exc:
            self.pool.probe_failed(endpoint, str(exc))
        else:
            self.pool.probe_passed(endpoint, found)

    async def run(self, make_flow: Callable[[], Flow[T]], timeout: float | None) -> T:
        """One attempt of a flow, as Transport.run."""
        route = self.pool.route(self.settings.model)
        last: RerankerError | None = None
        while True:
            used: list[Endpoint] = []

            async def execute(op: Op) -> Any:
                if isinstance(op, InferAll):
                    return await self.infer_all(op, timeout)
                if not used:
                    endpoint = route.next()
                    if endpoint is None:
                        raise no_replica(self.pool, self.settings.model, last)
                    used.append(endpoint)
                return await self.execute(used[0], op, timeout)

            try:
                result = await adrive(make_flow(), execute, self.settings.url, self.settings.model)
            except RerankerError as exc:
                if not used or not route.failed(used[0], str(exc), is_retryable(exc)):
                    raise
                last = exc
                continue
            if used:
                route.succeeded(used[0])
            return result

    async def execute(self, endpoint: Endpoint, op: Op, timeout: float | None) -> Any:
        return await self._bounded(getattr(self, op.method)(self.client(endpoint), op, timeout), timeout)

    def client(self, endpoint: Endpoint) -> Any:
        """The tritonclient aio client of one endpoint (made on first use)."""
        client = self._clients.get(endpoint.address)
        if client is None:
            client = self._clients[endpoint.address] = self.calls.make_client(endpoint.address)
        return client

    @staticmethod
    async def _bounded(awaitable: Any, timeout: float | None) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError:
            raise AttemptTimeout(f"no answer within {timeout:.3g}s") from None

    # -- operations --------------------------------------------------------------------------
    async def server_live(self, client: Any, op: Op, timeout: float | None) -> bool:
        return await client.is_server_live(**self.calls.common(timeout))

    async def model_ready(self, client: Any, op: ModelReady, timeout: float | None) -> bool:
        return await client.is_model_ready(op.model, op.version, **self.calls.common(timeout))

    async def repository_index(self, client: Any, op: Op, timeout: float | None) -> Any:
        return await client.get_model_repository_index(**self.calls.index_kwargs(timeout))

    async def model_config(self, client: Any, op: ModelConfig, timeout: float | None) -> Any:
        return await client.get_model_config(op.model, op.version, **self.calls.config_kwargs(timeout))

    async def infer_all(self, op: InferAll, timeout: float | None) -> list[dict[str, Any]]:
        """Every request on the replica picked for it (sent again to another one after a replica
        failure, within `timeout`); all outputs or one error."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        async def one(request: InferRequest) -> dict[str, Any]:
            route = self.pool.route(self.settings.model)
            last: RerankerError | None = None
            async with self._semaphore:
                while (endpoint := route.next()) is not None:
                    left = None if deadline is None else max(0.001, deadline - loop.time())
                    try:
                        result = await self._bounded(
                            self.client(endpoint).infer(
                                op.model,
                                self.calls.inputs(request),
                                **self.calls.infer_kwargs(op, request, left),
                            ),
                            left,
                        )
                        arrays = self.calls.result_arrays(result, request)
                    except asyncio.CancelledError:
                        route.failed(endpoint, "cancelled", False)
                        raise
                    except Exception as exc:  # noqa: BLE001 - every error is mapped
                        last = map_exception(exc, endpoint.address, self.settings.model)
                        if not route.failed(endpoint, str(last), is_retryable(last)):
                            raise last from exc
                        continue
                    route.succeeded(endpoint)
                    return arrays
            raise no_replica(self.pool, self.settings.model, last)

        tasks = [asyncio.ensure_future(one(r)) for r in op.requests]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:  # one failed: the others are not needed (the call is retried whole)
                task.cancel()

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


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
        dns_refresh_s: float = 10.0,
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
            dns_refresh_s=dns_refresh_s,
        )
        options = ScoringOptions(
            tokenizer_path, model_repository, max_request_tokens, max_text_bytes, tokenize
        )
        retry = retry or RetryPolicy()
        transport = AsyncTransport(settings)
        try:
            core = await transport.call(lambda: connect_flow(settings, options), retry)
            transport.connected()
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
