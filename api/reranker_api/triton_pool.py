"""The API's connection to Triton: one grpc.aio client per replica, chosen per request by the
shared endpoint pool (reranker_core.endpoints), and Triton failures turned into backend errors by
the shared classification (reranker_core.triton_errors).

`PooledTriton` offers the tritonclient.grpc.aio calls the backend makes (infer, model config,
repository index, readiness) with the same signatures, so the backend does not know how many
replicas there are. With several endpoints a background task resolves a dns:/// name again every
`refresh_s` and probes the replicas: new ones, ejected ones after their backoff, live ones every
`health_s` (server ready, and for each model the API has asked for: ready, and which manifest).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from reranker_api.backend import (
    BackendError,
    BackendFailure,
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
)
from reranker_core.endpoints import (
    Endpoint,
    EndpointPool,
    EndpointStatus,
    PoolOptions,
    fingerprint,
    refresh_membership,
)
from reranker_core.triton_errors import Failure, classify

MANIFEST_PARAMETER = "reranker_manifest"
PROBE_TIMEOUT_S = 2.0
TICK_S = 0.25  # how often the background task looks for due probes
log = logging.getLogger("reranker_api")


class NoReplica(ConnectionError):
    """No replica could take the request (none listed, none live, or every one tried)."""


def backend_error(exc: BaseException, model: str, url: str) -> BackendError:
    """The backend error for a failed Triton call (gRPC status, socket error, ...)."""
    if isinstance(exc, BackendError):
        return exc
    failure = classify(exc)
    kind, message = failure.kind, failure.message
    if kind is Failure.UNREACHABLE:
        return BackendUnavailable(f"Triton at {url} is unreachable ({message})")
    if kind is Failure.TIMEOUT:
        return BackendTimeout(f"model {model!r} did not answer in time")
    if kind is Failure.BACKEND_GONE:
        return BackendUnavailable(
            f"model {model!r} is unavailable: its backend process is not running "
            "(the model must be reloaded or Triton restarted)"
        )
    if kind in (Failure.NOT_FOUND, Failure.RELOADING):
        return BackendUnavailable(f"model {model!r} is not loaded on Triton right now")
    if kind is Failure.NOT_READY:
        return BackendUnavailable(f"model {model!r} is not ready: {message}")
    if kind is Failure.INVALID:
        return InvalidRequest(message)
    if kind is Failure.RESTRICTED:
        return BackendFailure(f"Triton refused the call (a restricted API needs its key header): {message}")
    if not failure.answered:
        return BackendUnavailable(f"Triton at {url} failed: {message}")
    return BackendFailure(f"model {model!r} failed: {message}")


def manifest_text(config: dict[str, Any]) -> str:
    """The manifest JSON text of a model config (as_json), "" when it has none."""
    return str(config.get("parameters", {}).get(MANIFEST_PARAMETER, {}).get("string_value", ""))


class PooledTriton:
    """tritonclient.grpc.aio.InferenceServerClient's calls used by the backend, over the replicas
    named by `url` ("host:port", "a:8001,b:8001" or "dns:///name:8001")."""

    def __init__(
        self,
        url: str,
        *,
        channel_args: Sequence[tuple[str, Any]] = (),
        options: PoolOptions | None = None,
        pool: EndpointPool | None = None,
        make_client: Callable[[str], Any] | None = None,
    ) -> None:
        self.url = url
        self.pool = pool or EndpointPool(url, options)
        self.channel_args = list(channel_args)
        self.make_client = make_client or self._grpc_client
        self._clients: dict[str, Any] = {}
        self._models: set[str] = set()  # Triton model names probed on every replica
        self._learning: dict[str, asyncio.Future] = {}
        self._task: asyncio.Task | None = None
        self._probes: set[asyncio.Task] = set()
        self._first_round: asyncio.Event | None = None

    # -- the pool's state --------------------------------------------------------------------------
    def status(self) -> list[EndpointStatus]:
        return self.pool.status()

    def client(self, endpoint: Endpoint) -> Any:
        """The grpc.aio client of one replica (made on first use, in the running loop)."""
        client = self._clients.get(endpoint.address)
        if client is None:
            client = self._clients[endpoint.address] = self.make_client(endpoint.address)
        return client

    def _grpc_client(self, address: str) -> Any:
        import tritonclient.grpc.aio as grpcaio

        return grpcaio.InferenceServerClient(url=address, channel_args=self.channel_args)

    async def _started(self) -> None:
        """Start the background resolution and probes (several endpoints or a DNS name) and wait for
        the first round of probes."""
        if self.pool.single:
            return
        if self._task is None:
            self._first_round = asyncio.Event()
            self._task = asyncio.ensure_future(self._run())
        assert self._first_round is not None
        if not self._first_round.is_set():
            try:
                await asyncio.wait_for(self._first_round.wait(), PROBE_TIMEOUT_S * 2)
            except asyncio.TimeoutError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:  # the loop must survive anything; the next round tries again
                log.exception("endpoint pool maintenance failed")
            assert self._first_round is not None
            self._first_round.set()
            await asyncio.sleep(TICK_S)

    async def _round(self) -> None:
        await refresh_membership(self.pool, self._clients)
        due = self.pool.probes_due()
        if not due:
            return
        tasks = [asyncio.ensure_future(self._probe(e)) for e in due]
        self._probes.update(tasks)
        for task in tasks:
            task.add_done_callback(self._probes.discard)
        if not self._first_round.is_set():  # type: ignore[union-attr]
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _probe(self, endpoint: Endpoint) -> None:
        """Ready, and the manifest fingerprint of every model the API has asked for that is ready."""
        client = self.client(endpoint)
        try:
            if not await client.is_server_ready(client_timeout=PROBE_TIMEOUT_S):
                self.pool.probe_failed(endpoint, "server not ready")
                return
            found = {}
            for model in sorted(self._models):
                if await client.is_model_ready(model, client_timeout=PROBE_TIMEOUT_S):
                    config = await client.get_model_config(
                        model, as_json=True, client_timeout=PROBE_TIMEOUT_S
                    )
                    found[model] = fingerprint(manifest_text(config["config"]))
        except Exception as exc:  # noqa: BLE001 - any failure: not usable now
            self.pool.probe_failed(endpoint, f"probe failed: {classify(exc).message}")
            return
        before = endpoint.state
        self.pool.probe_passed(endpoint, found)
        if before.value != "live":
            log.info("replica %s is live", endpoint.address)

    async def _learn(self, model: str) -> None:
        """A model not probed yet: probe every replica for it before its first request (the calls
        that arrive meanwhile wait for the same probes)."""
        if self.pool.single:
            return
        learning = self._learning.get(model)
        if learning is None:
            self._learning[model] = learning = asyncio.ensure_future(self._probe_for(model))
        await asyncio.shield(learning)

    async def _probe_for(self, model: str) -> None:
        self._models.add(model)
        await self._started()
        await asyncio.gather(*(self._probe(e) for e in self.pool.live()), return_exceptions=True)

    # -- routed calls ------------------------------------------------------------------------------
    async def _routed(self, model: str | None, call: Any, timeout: float | None) -> Any:
        """call(client, seconds_left) on the replica the pool picks; after a replica failure, on
        another one, until the timeout."""
        route = self.pool.route(model, None if timeout is None else self.pool.clock() + timeout)
        last: BaseException | None = None
        while (endpoint := route.next()) is not None:
            left = route.remaining()
            left = None if left is None else max(0.001, left)
            try:
                result = await call(self.client(endpoint), left)
            except asyncio.CancelledError:
                route.failed(endpoint, "cancelled", False)
                raise
            except Exception as exc:  # noqa: BLE001 - classified below
                failure = classify(exc)
                if not route.failed_with(endpoint, failure):
                    raise
                if endpoint.ejections and endpoint.state.value == "ejected":
                    log.warning("replica %s ejected: %s", endpoint.address, endpoint.reason)
                last = exc
                continue
            route.succeeded(endpoint)
            return result
        if last is not None:
            raise last
        raise NoReplica(f"no replica at {self.pool.spec} is ready{self._why()}")

    def _why(self) -> str:
        if self.pool.resolve_error:
            return f": {self.pool.resolve_error}"
        states = "; ".join(f"{s.address} {s.state}" for s in self.pool.status())
        return f" ({states})" if states else ""

    async def infer(
        self, model_name: str, inputs: Any, *, client_timeout: float | None = None, **kw: Any
    ) -> Any:
        await self._learn(model_name)
        return await self._routed(
            model_name, lambda c, left: c.infer(model_name, inputs, client_timeout=left, **kw), client_timeout
        )

    async def get_model_config(
        self, model_name: str, *, client_timeout: float | None = None, **kw: Any
    ) -> Any:
        await self._learn(model_name)
        return await self._routed(
            model_name,
            lambda c, left: c.get_model_config(model_name, client_timeout=left, **kw),
            client_timeout,
        )

    async def get_model_repository_index(self, *, client_timeout: float | None = None, **kw: Any) -> Any:
        await self._started()
        return await self._routed(
            None, lambda c, left: c.get_model_repository_index(client_timeout=left, **kw), client_timeout
        )

    async def is_server_ready(self, *, client_timeout: float | None = None, **kw: Any) -> bool:
        """Some replica is ready (with one endpoint: the server's own answer)."""
        if self.pool.single:
            return await self.client(self.pool.endpoints[0]).is_server_ready(
                client_timeout=client_timeout, **kw
            )
        await self._started()
        if not self.pool.live():
            raise NoReplica(f"no replica at {self.pool.spec} is ready{self._why()}")
        return True

    async def is_model_ready(
        self, model_name: str, *, client_timeout: float | None = None, **kw: Any
    ) -> bool:
        """Some replica serves the model (with the expected manifest)."""
        if self.pool.single:
            return await self.client(self.pool.endpoints[0]).is_model_ready(
                model_name, client_timeout=client_timeout, **kw
            )
        await self._learn(model_name)
        return any(model_name in e.fingerprints for e in self.pool.live(model_name))

    async def close(self) -> None:
        for task in [self._task, *self._probes]:
            if task is not None:
                task.cancel()
        self._task, self._first_round = None, None
        self._learning.clear()
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
