"""One mapping from what tritonclient (gRPC/HTTP, sync/asyncio) and the network raise to the
client's exception types, which decide what is retried (see retry.is_retryable)."""

from __future__ import annotations

from reranker_client.errors import (
    InferenceError,
    ModelNotReadyError,
    ModelReloadingError,
    RequestTimeoutError,
    RerankerError,
    ServerUnavailableError,
)

# Triton's wording for a model it knows but has no loaded version of (being unloaded or loaded):
# it answers NOT_FOUND (HTTP 400) "Request for unknown model: 'm' has no available versions".
NO_AVAILABLE_VERSIONS = "has no available versions"


class AttemptTimeout(Exception):
    """Raised by a transport when a request ran past the attempt's timeout (socket-level timeouts,
    e.g. while connecting, stay OSErrors: the server is unreachable)."""


def _dropped_connection(exc: BaseException) -> bool:
    """The peer went away or could not be reached (sockets, geventhttpclient, aiohttp)."""
    if isinstance(exc, (ConnectionError, OSError)) or type(exc).__name__ == "HTTPConnectionClosed":
        return True
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - tritonclient[http] brings aiohttp
        return False
    return isinstance(exc, aiohttp.ClientConnectionError)


def _classify(exc: BaseException, url: str, model: str) -> RerankerError:
    from tritonclient.utils import InferenceServerException

    if isinstance(exc, RerankerError):
        return exc
    if isinstance(exc, AttemptTimeout):
        return RequestTimeoutError(f"request to {model} timed out on the client: {exc}")
    if isinstance(exc, InferenceServerException):
        status = (exc.status() or "").upper()
        message = exc.message() or str(exc)
        lowered = message.lower()
        if "is restricted" in lowered or status == "403":
            # Triton answers a restricted API without its key header with gRPC UNAVAILABLE / HTTP 403:
            # final, a retry would carry the same headers.
            return InferenceError(
                f"the server refused {model!r}: a restricted API needs its key header "
                f"(headers=...): {message}"
            )
        if "UNAVAILABLE" in status or "failed to connect" in lowered:
            return ServerUnavailableError(f"Triton server at {url} is unreachable: {message}")
        if "stub process" in lowered and "not healthy" in lowered:
            # The model's Python-backend process died; Triton 2.51 does not restart it by itself.
            return ServerUnavailableError(
                f"model {model!r} on {url} is unavailable: its backend process "
                f"crashed and must be reloaded or the server restarted ({message})"
            )
        if "DEADLINE_EXCEEDED" in status:
            return RequestTimeoutError(f"request to {model} timed out (timeout_s): {message}")
        if NO_AVAILABLE_VERSIONS in lowered:
            return ModelReloadingError(
                f"model {model!r} on {url} has no available versions right now "
                f"(being loaded or reloaded): {message}"
            )
        if "NOT_FOUND" in status or "unknown model" in lowered:
            return ModelNotReadyError(f"model {model!r} not found on {url}: {message}")
        return InferenceError(f"server error from {model}: {message}")
    if _dropped_connection(exc):
        return ServerUnavailableError(f"Triton server at {url} is unreachable: {type(exc).__name__}: {exc}")
    return InferenceError(f"request to {model} failed: {type(exc).__name__}: {exc}")


def map_exception(exc: BaseException, url: str, model: str) -> RerankerError:
    """The client's exception for a tritonclient / socket error (the original as its cause)."""
    mapped = _classify(exc, url, model)
    if mapped is not exc and mapped.__cause__ is None:
        mapped.__cause__ = exc
    return mapped
