"""The synchronous transport: runs the client's flows (reranker_client.ops) over tritonclient's
gRPC or HTTP client, one client per replica of the endpoint pool. Requests of one call go out
concurrently (gRPC: a thread pool; HTTP: tritonclient's greenlet-based async_infer), each to the
replica the pool picks; a request that hit a failing replica is sent to another one within the
attempt's timeout (the same timeout as in the asyncio transport, aio.AsyncTransport)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from reranker_client.endpoint_pool import make_pool, no_replica, pin_manifest, probe_flow, probe_timeout
from reranker_client.errors import AttemptTimeout, RerankerError, map_exception
from reranker_client.ops import Flow, InferAll, InferRequest, ModelConfig, ModelReady, Op, drive
from reranker_client.retry import RetryPolicy, is_retryable
from reranker_client.settings import ConnectionSettings
from reranker_client.wire import TritonCalls
from reranker_core.endpoints import Endpoint, EndpointStatus

T = TypeVar("T")


class Transport:
    """tritonclient clients (gRPC or HTTP), one per endpoint, for one ConnectionSettings."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.calls = TritonCalls(settings, asynchronous=False)
        self.pool = make_pool(settings)
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._threads: ThreadPoolExecutor | None = None
        if self.calls.grpc:
            self._threads = ThreadPoolExecutor(
                max_workers=settings.concurrency, thread_name_prefix="reranker-grpc"
            )

    def endpoints(self) -> list[EndpointStatus]:
        with self._lock:
            return self.pool.status()

    def call(self, make_flow: Callable[[], Flow[T]], retry: RetryPolicy) -> T:
        """Run a fresh flow per attempt under `retry`; each attempt's requests get
        settings.attempt_timeout(time left)."""

        def attempt(left: float | None) -> T:
            self.maintain()
            return self.run(make_flow, self.settings.attempt_timeout(left))

        return retry.call(attempt)

    def connected(self) -> None:
        """The client read its manifest: requests go only to replicas serving that manifest."""
        with self._lock:
            pin_manifest(self.pool, self.settings.model)

    def maintain(self) -> None:
        """Resolve a dns:/// name when due, and probe new endpoints and ejected ones whose backoff is over."""
        with self._lock:
            if self.pool.resolve_due():
                self.pool.resolve()
            due = self.pool.probes_due()
            self._forget_removed()
        for endpoint in due:
            try:
                found = drive(
                    probe_flow(self.settings, endpoint.address),
                    lambda op, e=endpoint: self.execute(e, op, probe_timeout(self.settings)),
                    endpoint.address,
                    self.settings.model,
                )
            except RerankerError as exc:
                with self._lock:
                    self.pool.probe_failed(endpoint, str(exc))
            else:
                with self._lock:
                    self.pool.probe_passed(endpoint, found)

    def run(self, make_flow: Callable[[], Flow[T]], timeout: float | None) -> T:
        """One attempt of a flow: its probes and reads on one replica (another one if that one fails);
        its inference requests each on the replica the pool picks for it."""
        route = self.pool.route(self.settings.model)
        last: RerankerError | None = None
        while True:
            used: list[Endpoint] = []

            def execute(op: Op) -> Any:
                if isinstance(op, InferAll):
                    return self.execute(None, op, timeout)
                if not used:
                    with self._lock:
                        endpoint = route.next()
                    if endpoint is None:
                        raise no_replica(self.pool, self.settings.model, last)
                    used.append(endpoint)
                return self.execute(used[0], op, timeout)

            try:
                result = drive(make_flow(), execute, self.settings.url, self.settings.model)
            except RerankerError as exc:
                if not used:
                    raise
                with self._lock:
                    retry_elsewhere = route.failed(used[0], str(exc), is_retryable(exc))
                if not retry_elsewhere:
                    raise
                last = exc
                continue
            if used:
                with self._lock:
                    route.succeeded(used[0])
            return result

    def execute(self, endpoint: Endpoint | None, op: Op, timeout: float | None) -> Any:
        method = getattr(self, op.method)
        if self.calls.grpc or timeout is None:
            return method(endpoint, op, timeout)  # gRPC: a deadline on every call (client_timeout)
        import gevent

        with gevent.Timeout(timeout, AttemptTimeout(f"no answer within {timeout:.3g}s")):
            return method(endpoint, op, timeout)

    def client(self, endpoint: Endpoint) -> Any:
        """The tritonclient client of one endpoint (made on first use)."""
        with self._lock:
            client = self._clients.get(endpoint.address)
            if client is None:
                client = self._clients[endpoint.address] = self.calls.make_client(endpoint.address)
            return client

    def _forget_removed(self) -> None:
        """Close the clients of endpoints that left the DNS answer and have nothing in flight."""
        for address in self.pool.idle_retired():
            client = self._clients.pop(address, None)
            if client is not None:
                client.close()

    # -- operations --------------------------------------------------------------------------
    def server_live(self, endpoint: Endpoint, op: Op, timeout: float | None) -> bool:
        return self.client(endpoint).is_server_live(**self.calls.common(timeout))

    def model_ready(self, endpoint: Endpoint, op: ModelReady, timeout: float | None) -> bool:
        return self.client(endpoint).is_model_ready(op.model, op.version, **self.calls.common(timeout))

    def repository_index(self, endpoint: Endpoint, op: Op, timeout: float | None) -> Any:
        return self.client(endpoint).get_model_repository_index(**self.calls.index_kwargs(timeout))

    def model_config(self, endpoint: Endpoint, op: ModelConfig, timeout: float | None) -> Any:
        return self.client(endpoint).get_model_config(
            op.model, op.version, **self.calls.config_kwargs(timeout)
        )

    def infer_all(
        self, endpoint: Endpoint | None, op: InferAll, timeout: float | None
    ) -> list[dict[str, Any]]:
        """Every request on the replica picked for it; all outputs or one error."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.calls.grpc:
            return (
                [self._infer_routed(op, r, deadline) for r in op.requests]
                if len(op.requests) == 1
                else self._http_wave(op, deadline)
            )
        if len(op.requests) == 1:
            return [self._infer_routed(op, op.requests[0], deadline)]
        assert self._threads is not None
        futures = [self._threads.submit(self._infer_routed, op, r, deadline) for r in op.requests]
        return [f.result() for f in futures]

    def _http_wave(self, op: InferAll, deadline: float | None) -> list[dict[str, Any]]:
        """HTTP: every request sent at once (greenlets), each to its replica; one that hit a failing
        replica is sent again, to another one. Requests still out when the call fails are let go."""
        sent: list[tuple[InferRequest, Any, Endpoint, Any]] = []
        results: list[dict[str, Any]] = []
        try:
            for request in op.requests:
                with self._lock:
                    route = self.pool.route(self.settings.model)
                    endpoint = route.next()
                if endpoint is None:
                    raise no_replica(self.pool, self.settings.model, None)
                sent.append((request, route, endpoint, None))
                pending = self.client(endpoint).async_infer(
                    op.model,
                    self.calls.inputs(request),
                    **self.calls.infer_kwargs(op, request, _left(deadline)),
                )
                sent[-1] = (request, route, endpoint, pending)
            while sent:
                request, route, endpoint, pending = sent.pop(0)
                try:
                    result = self.calls.result_arrays(pending.get_result(), request)
                except Exception as exc:  # noqa: BLE001 - every error is mapped
                    error = map_exception(exc, endpoint.address, self.settings.model)
                    with self._lock:
                        if not route.failed(endpoint, str(error), is_retryable(error)):
                            raise error from exc
                    results.append(self._infer_routed(op, request, deadline, route, error))
                    continue
                with self._lock:
                    route.succeeded(endpoint)
                results.append(result)
        finally:
            with self._lock:
                for _request, route, endpoint, _pending in sent:
                    route.failed(endpoint, "abandoned", False)
        return results

    def _infer_routed(
        self,
        op: InferAll,
        request: InferRequest,
        deadline: float | None,
        route: Any = None,
        last: RerankerError | None = None,
    ) -> dict[str, Any]:
        """One request, sent again to another replica after a replica failure."""
        if route is None:
            route = self.pool.route(self.settings.model)
        while True:
            with self._lock:
                endpoint = route.next()
            if endpoint is None:
                raise no_replica(self.pool, self.settings.model, last)
            try:
                result = self.client(endpoint).infer(
                    op.model,
                    self.calls.inputs(request),
                    **self.calls.infer_kwargs(op, request, _left(deadline)),
                )
                arrays = self.calls.result_arrays(result, request)
            except Exception as exc:  # noqa: BLE001 - every error is mapped
                last = map_exception(exc, endpoint.address, self.settings.model)
                with self._lock:
                    if not route.failed(endpoint, str(last), is_retryable(last)):
                        raise last from exc
                continue
            with self._lock:
                route.succeeded(endpoint)
            return arrays

    def close(self) -> None:
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def _left(deadline: float | None) -> float | None:
    """Seconds left until `deadline` (time.monotonic), at least a millisecond; None without one."""
    return None if deadline is None else max(0.001, deadline - time.monotonic())
