"""The synchronous transport: runs the client's flows (reranker_client.ops) over tritonclient's
gRPC or HTTP client. Requests of one call go out concurrently (gRPC: a thread pool; HTTP:
tritonclient's greenlet-based async_infer); every request of an attempt is bounded by the same
timeout as in the asyncio transport (aio.AsyncTransport)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from reranker_client.error_mapping import AttemptTimeout
from reranker_client.ops import Flow, InferAll, ModelConfig, ModelReady, Op, drive
from reranker_client.retry import RetryPolicy
from reranker_client.settings import ConnectionSettings
from reranker_client.wire import TritonCalls

T = TypeVar("T")


class Transport:
    """One tritonclient client (gRPC or HTTP) for one ConnectionSettings."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self.calls = TritonCalls(settings, asynchronous=False)
        self._client = self.calls.make_client()
        self._pool: ThreadPoolExecutor | None = None
        if self.calls.grpc:
            self._pool = ThreadPoolExecutor(
                max_workers=settings.concurrency, thread_name_prefix="reranker-grpc"
            )

    def call(self, make_flow: Callable[[], Flow[T]], retry: RetryPolicy) -> T:
        """Run a fresh flow per attempt under `retry`; each attempt's requests get
        settings.attempt_timeout(time left)."""
        return retry.call(lambda left: self.run(make_flow(), self.settings.attempt_timeout(left)))

    def run(self, flow: Flow[T], timeout: float | None) -> T:
        return drive(flow, lambda op: self.execute(op, timeout), self.settings.url, self.settings.model)

    def execute(self, op: Op, timeout: float | None) -> Any:
        method = getattr(self, op.method)
        if self.calls.grpc or timeout is None:
            return method(op, timeout)  # gRPC: a deadline on every call (client_timeout)
        import gevent

        with gevent.Timeout(timeout, AttemptTimeout(f"no answer within {timeout:.3g}s")):
            return method(op, timeout)

    # -- operations --------------------------------------------------------------------------
    def server_live(self, op: Op, timeout: float | None) -> bool:
        return self._client.is_server_live(**self.calls.common(timeout))

    def model_ready(self, op: ModelReady, timeout: float | None) -> bool:
        return self._client.is_model_ready(op.model, op.version, **self.calls.common(timeout))

    def repository_index(self, op: Op, timeout: float | None) -> Any:
        return self._client.get_model_repository_index(**self.calls.index_kwargs(timeout))

    def model_config(self, op: ModelConfig, timeout: float | None) -> Any:
        return self._client.get_model_config(op.model, op.version, **self.calls.config_kwargs(timeout))

    def infer_all(self, op: InferAll, timeout: float | None) -> list[dict[str, Any]]:
        if not self.calls.grpc:
            pending = [
                (
                    r,
                    self._client.async_infer(
                        op.model, self.calls.inputs(r), **self.calls.infer_kwargs(op, r, timeout)
                    ),
                )
                for r in op.requests
            ]
            return [self.calls.result_arrays(p.get_result(), r) for r, p in pending]

        def one(request):
            result = self._client.infer(
                op.model, self.calls.inputs(request), **self.calls.infer_kwargs(op, request, timeout)
            )
            return self.calls.result_arrays(result, request)

        if len(op.requests) == 1:
            return [one(op.requests[0])]
        assert self._pool is not None
        futures = [self._pool.submit(one, r) for r in op.requests]
        return [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
