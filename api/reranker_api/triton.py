"""The real backend: the `<name>-text` models on Triton, over asyncio gRPC (tritonclient.grpc.aio).

Text model contract: inputs `query` BYTES [1] and `passages` BYTES [n]; request parameters
(normalize, truncate, max_length, query_max_length, long_passages, window_stride and the LLM
options); output `scores` FP32 [layers, n]. The model's manifest (config parameter
`reranker_manifest`) gives the family, positions and hub id of each model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from reranker_api.backend import (
    BackendFailure,
    InvalidRequest,
    ModelInfo,
    ModelNotFound,
    Readiness,
    ScoreOptions,
)
from reranker_api.triton_pool import PooledTriton, backend_error
from reranker_core.endpoints import EndpointStatus, PoolOptions

QUERY, PASSAGES, SCORES = "query", "passages", "scores"
MANIFEST_PARAMETER = "reranker_manifest"
PROBE_TIMEOUT_S = 5.0
log = logging.getLogger("reranker_api")
# tritonclient's defaults (message size, keepalive) plus a short reconnect backoff, so that the
# service is back within about a second of Triton coming back (gRPC's default grows to 120 s).
CHANNEL_ARGS = [
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.keepalive_time_ms", 2**31 - 1),
    ("grpc.keepalive_timeout_ms", 20000),
    ("grpc.keepalive_permit_without_calls", False),
    ("grpc.http2.max_pings_without_data", 2),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def request_parameters(options: ScoreOptions) -> dict[str, Any]:
    """Triton request parameters: only what differs from the model's defaults; lists as JSON."""
    params: dict[str, Any] = {}
    if options.normalize:
        params["normalize"] = True
    if not options.truncate:
        params["truncate"] = False
    for name in ("max_length", "query_max_length", "long_passages", "window_stride"):
        value = getattr(options, name)
        if value is not None:
            params[name] = value
    for name, value in options.llm.items():
        if value is not None:
            params[name] = json.dumps(value) if isinstance(value, (list, tuple)) else value
    return params


def bytes_input(name: str, items: Sequence[bytes]) -> Any:
    """A BYTES InferInput of UTF-8 items. Triton's raw BYTES layout is, per item, its length as a
    4-byte little-endian integer and then its bytes; built directly, this is several times faster
    than tritonclient's generic serializer (the largest CPU cost of the service per request)."""
    import tritonclient.grpc.aio as grpcaio

    tensor = grpcaio.InferInput(name, [len(items)], "BYTES")
    if not hasattr(tensor, "_raw_content"):  # another tritonclient layout: the generic path
        return tensor.set_data_from_numpy(np.array(list(items), dtype=np.object_))
    tensor._raw_content = b"".join(len(item).to_bytes(4, "little") + item for item in items)
    return tensor


class TritonBackend:
    """Serves the Triton models named `<name><suffix>` as `<name>`; discovers them from the
    repository index unless a fixed list is given."""

    def __init__(
        self,
        url: str,
        *,
        models: Sequence[str] = (),
        suffix: str = "-text",
        refresh_s: float = 5.0,
        pool: PoolOptions | None = None,
    ) -> None:
        self.url = url  # one address, a comma-separated list of replicas or dns:///name:port
        self.pool_options = pool
        self.suffix = suffix
        self.fixed = tuple(m[: -len(suffix)] if suffix and m.endswith(suffix) else m for m in models)
        self.refresh_s = refresh_s
        self._client: Any = None
        self._models: dict[str, ModelInfo] = {}
        self._aliases: dict[str, str] = {}
        self._listed_at = float("-inf")
        self._lock: asyncio.Lock | None = None
        self._no_strict_length: set[str] = set()

    @property
    def client(self) -> Any:
        """The gRPC client of the replicas (triton_pool.PooledTriton), made on first use."""
        if self._client is None:
            self._client = PooledTriton(self.url, channel_args=CHANNEL_ARGS, options=self.pool_options)
        return self._client

    def endpoints(self) -> list[EndpointStatus]:
        """The replicas and their state, for metrics."""
        return self.client.status()

    def triton_name(self, model: str) -> str:
        return model + self.suffix

    async def _info(self, name: str) -> ModelInfo:
        """What the model's manifest says; just the name when it cannot be read."""
        try:
            config = (
                await self.client.get_model_config(
                    self.triton_name(name), as_json=True, client_timeout=PROBE_TIMEOUT_S
                )
            )["config"]
            text = config.get("parameters", {}).get(MANIFEST_PARAMETER, {}).get("string_value", "")
            manifest = json.loads(text) if text else {}
        except Exception:
            return ModelInfo(name, aliases=(self.triton_name(name),))
        source = str(manifest.get("source") or "")
        aliases = (self.triton_name(name),) + ((source,) if "/" in source and source != name else ())
        return ModelInfo(
            name,
            aliases=aliases,
            family=str(manifest.get("family") or ""),
            max_positions=manifest.get("max_positions"),
            default_max_length=manifest.get("default_max_length"),
        )

    async def _list(self) -> list[str]:
        if self.fixed:
            return list(self.fixed)
        index = await self.client.get_model_repository_index(as_json=True, client_timeout=PROBE_TIMEOUT_S)
        names = [m.get("name", "") for m in index.get("models", [])]
        return sorted(n[: -len(self.suffix)] for n in set(names) if self.suffix and n.endswith(self.suffix))

    async def refresh(self, force: bool = False) -> None:
        """Re-read the served models (at most once per refresh_s unless forced)."""
        if not force and time.monotonic() - self._listed_at < self.refresh_s:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not force and time.monotonic() - self._listed_at < self.refresh_s:
                return
            try:
                names = await self._list()
            except Exception as exc:
                raise backend_error(exc, "*", self.url) from None
            models = {n: self._models.get(n) or await self._info(n) for n in names}
            if any(not m.family for m in models.values()):  # retry manifests not read last time
                models = {n: m if m.family else await self._info(n) for n, m in models.items()}
            self._models = models
            self._aliases = {a: m.name for m in models.values() for a in m.aliases}
            self._listed_at = time.monotonic()

    async def models(self) -> list[ModelInfo]:
        await self.refresh()
        return list(self._models.values())

    async def resolve(self, name: str) -> ModelInfo:
        for attempt in (False, True):
            await self.refresh(force=attempt)
            key = name if name in self._models else self._aliases.get(name)
            if key is not None:
                return self._models[key]
            if self.fixed:
                break
        served = ", ".join(sorted(self._models)) or "none"
        raise ModelNotFound(f"model {name!r} is not served here; served models: {served}")

    async def readiness(self, model: str) -> Readiness:
        try:
            if not await self.client.is_server_ready(client_timeout=PROBE_TIMEOUT_S):
                return Readiness(False, f"Triton at {self.url} is not ready")
            if not await self.client.is_model_ready(self.triton_name(model), client_timeout=PROBE_TIMEOUT_S):
                return Readiness(False, f"model {model!r} is not ready on Triton")
        except Exception as exc:
            return Readiness(False, backend_error(exc, model, self.url).args[0])
        return Readiness(True)

    async def score(
        self,
        model: str,
        query: bytes,
        passages: Sequence[bytes],
        options: ScoreOptions,
        timeout_s: float | None,
    ) -> np.ndarray:
        query_in = bytes_input(QUERY, [query])
        passages_in = bytes_input(PASSAGES, passages)
        params = request_parameters(options)
        if model in self._no_strict_length:
            params.pop("truncate", None)
        try:
            result = await self._infer(model, [query_in, passages_in], params, timeout_s)
        except InvalidRequest as exc:
            if (
                "truncate" not in params
                or "unknown option" not in exc.message
                or "truncate" not in exc.message
            ):
                raise
            # A text model without the `truncate` option: it always truncates (FlagEmbedding's rule).
            log.warning(
                "model %r has no 'truncate' option: over-long inputs are truncated, not refused", model
            )
            self._no_strict_length.add(model)
            params.pop("truncate")
            result = await self._infer(model, [query_in, passages_in], params, timeout_s)
        scores = result.as_numpy(SCORES)
        if scores is None:
            raise BackendFailure(f"model {model!r} returned no '{SCORES}' output")
        return scores.reshape(-1, len(passages)) if scores.ndim == 1 else scores

    async def _infer(self, model: str, inputs: list, params: dict[str, Any], timeout_s: float | None) -> Any:
        import tritonclient.grpc.aio as grpcaio

        try:
            return await self.client.infer(
                self.triton_name(model),
                inputs,
                outputs=[grpcaio.InferRequestedOutput(SCORES)],
                parameters=params or None,
                client_timeout=timeout_s,
            )
        except Exception as exc:
            raise backend_error(exc, model, self.url) from None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
