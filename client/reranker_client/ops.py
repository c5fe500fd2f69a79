"""The client's protocol without I/O: what to ask the server, in which order, and what the answers mean.

A *flow* is a generator that yields operations (ServerLive, ModelReady, ...) and receives their
results (or has the mapped error thrown into it). The sync transports run flows with `drive`, the
asyncio transports with `adrive`; both map errors with the same `map_exception`, so state probing,
request building and error classification exist once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from reranker_client.errors import (
    ModelNotReadyError,
    ModelReloadingError,
    RerankerError,
    ServerUnavailableError,
    map_exception,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Tensor:
    """One input tensor of a request (KServe v2 datatype)."""

    name: str
    datatype: str  # "INT64", "BYTES", ...
    data: np.ndarray


@dataclass(frozen=True)
class InferRequest:
    inputs: tuple[Tensor, ...]
    outputs: tuple[str, ...]
    parameters: dict[str, Any] | None = None  # as Triton carries them (lists as JSON text)


# Operations a transport executes. `method` names the transport method that runs it.
@dataclass(frozen=True)
class ServerLive:
    method = "server_live"


@dataclass(frozen=True)
class ModelReady:
    model: str
    version: str = ""
    method = "model_ready"


@dataclass(frozen=True)
class RepositoryIndex:
    method = "repository_index"


@dataclass(frozen=True)
class ModelConfig:
    model: str
    version: str = ""
    method = "model_config"


@dataclass(frozen=True)
class InferAll:
    """Send every request (concurrently, bounded by the client's max_concurrency); the result is
    one {output name: array} per request, in order."""

    model: str
    version: str
    requests: tuple[InferRequest, ...] = field(default_factory=tuple)
    method = "infer_all"


Op = Any
Flow = Generator[Op, Any, T]


def config_dict(answer: Any) -> dict[str, Any]:
    """A model config as a dict, from gRPC's {"config": {...}} or HTTP's plain JSON."""
    if isinstance(answer, dict) and isinstance(answer.get("config"), dict):
        return answer["config"]
    return answer


def index_entries(index: Any) -> list[dict[str, Any]]:
    """The repository index as [{"name", "version", "state", "reason"}], from any client's answer."""
    if isinstance(index, dict):
        index = index.get("models", [])
    elif index is not None and not isinstance(index, list):  # gRPC protobuf
        index = [
            {"name": m.name, "version": m.version, "state": m.state, "reason": m.reason} for m in index.models
        ]
    return list(index or [])


# Triton's repository-index states of a model that is known but has no ready version.
_TRANSIENT_STATES = {"LOADING", "UNLOADING", "READY"}  # READY: it came back meanwhile


def not_ready_error(url: str, model: str, index: Any, version: str = "") -> ModelNotReadyError:
    """Why `model` (`version`, "" for any) is not ready, from the repository index (None when it
    could not be read)."""
    entries = [e for e in index_entries(index) if e.get("name") == model]
    if version:
        listed = [e for e in entries if str(e.get("version") or "") == version]
        if entries and not listed:
            known = ", ".join(sorted(str(e.get("version") or "?") for e in entries))
            return ModelNotReadyError(
                f"model {model!r} on {url} has no version {version} (versions: {known})"
            )
        entries = listed
    for entry in entries:
        state = (entry.get("state") or "UNKNOWN").upper()
        reason = entry.get("reason") or "no reason given"
        text = f"model {model!r} on {url} has no available versions right now (state {state}: {reason})"
        if state in _TRANSIENT_STATES or (state == "UNAVAILABLE" and reason.strip().lower() == "unloaded"):
            return ModelReloadingError(text)
        return ModelNotReadyError(text)
    if index is not None:
        return ModelNotReadyError(f"model {model!r} is not in the model repository of {url}")
    return ModelNotReadyError(
        f"model {model!r} is not ready on {url} (not found, still loading or "
        "failed to load; the repository index is not readable to say which)"
    )


def probe_model(url: str, model: str, version: str = "") -> Flow[dict[str, Any]]:
    """Server live -> model ready (else why not, from the repository index) -> the model config."""
    if not (yield ServerLive()):
        raise ServerUnavailableError(f"Triton server at {url} is not live")
    if not (yield ModelReady(model, version)):
        try:
            index = yield RepositoryIndex()
        except RerankerError:  # restricted API (admin key) or an older server
            index = None
        raise not_ready_error(url, model, index, version)
    return config_dict((yield ModelConfig(model, version)))


def drive(flow: Flow[T], execute: Callable[[Op], Any], url: str, model: str) -> T:
    """Run `flow` with a synchronous executor; executor errors are mapped and thrown into the flow."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(answer)
        except StopIteration as stop:
            return stop.value
        try:
            answer, error = execute(op), None
        except Exception as exc:  # noqa: BLE001 - every error is mapped
            answer, error = None, map_exception(exc, url, model)


async def adrive(flow: Flow[T], execute: Callable[[Op], Awaitable[Any]], url: str, model: str) -> T:
    """`drive` for an asyncio executor."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.throw(error) if error is not None else flow.send(answer)
        except StopIteration as stop:
            return stop.value
        try:
            answer, error = await execute(op), None
        except Exception as exc:  # noqa: BLE001
            answer, error = None, map_exception(exc, url, model)
