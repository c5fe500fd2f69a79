"""One classification of what Triton and the network answer when a request fails, shared by the
SDK and the rerank API (each maps the kinds to its own exception types).

No client library is imported here: the adapters hand in the exception, and it is read by duck
typing (tritonclient's InferenceServerException has status() and message(); grpc's AioRpcError has
code() and details(); socket, geventhttpclient and aiohttp errors are recognised by class).
`Failure.replica_failure` answers the pool's question: is this replica unfit right now (eject it and
send the request to another one)?
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Triton's wording for a model it knows but has no loaded version of (being unloaded or loaded):
# NOT_FOUND (HTTP 400) "Request for unknown model: 'm' has no available versions".
NO_AVAILABLE_VERSIONS = "has no available versions"

# Exception class names (anywhere in the MRO) of a dropped or refused connection in the HTTP
# libraries the clients use (geventhttpclient, aiohttp), besides the stdlib's OSError family.
_DROPPED_CONNECTION_CLASSES = {"HTTPConnectionClosed", "ClientConnectionError"}


class Failure(Enum):
    """Why a request to one Triton server failed."""

    UNREACHABLE = "unreachable"  # connection refused/reset/closed, gRPC UNAVAILABLE, server stopping
    BACKEND_GONE = "backend_gone"  # the model's Python-backend process died (not restarted by Triton)
    RELOADING = "reloading"  # the model is known but has no loaded version (unloading/loading)
    NOT_READY = "not_ready"  # the server or model says it is not ready (e.g. draining)
    NOT_FOUND = "not_found"  # the server does not know the model
    RESTRICTED = "restricted"  # a restricted Triton API called without its key header
    TIMEOUT = "timeout"  # the request's deadline passed
    INVALID = "invalid"  # the model refused the input
    SERVER_ERROR = "server_error"  # any other error the server answered with

    @property
    def replica_failure(self) -> bool:
        """True when this server cannot serve the model now but another replica may: eject it and
        send the (idempotent) request elsewhere."""
        return self in _REPLICA_FAILURES


_REPLICA_FAILURES = frozenset(
    {Failure.UNREACHABLE, Failure.BACKEND_GONE, Failure.RELOADING, Failure.NOT_READY}
)


@dataclass(frozen=True)
class Classified:
    """A failure's kind and the server's own words (answered) or the library's error."""

    kind: Failure
    message: str
    answered: bool = True  # the server answered with an error (else the call itself failed)

    @property
    def replica_failure(self) -> bool:
        return self.kind.replica_failure


def classify_status(status: str, message: str) -> Failure:
    """The kind of a server answer from its status (gRPC code name such as "StatusCode.UNAVAILABLE"
    or "UNAVAILABLE", or an HTTP status such as "400") and message."""
    status = (status or "").upper()
    lowered = (message or "").lower()
    if "is restricted" in lowered or status == "403":
        return Failure.RESTRICTED  # final: a retry carries the same headers
    if "stub process" in lowered and "not healthy" in lowered:
        return Failure.BACKEND_GONE
    if "DEADLINE_EXCEEDED" in status or status == "504":
        return Failure.TIMEOUT
    if "UNAVAILABLE" in status or status in ("502", "503") or "failed to connect" in lowered:
        return Failure.UNREACHABLE
    if "connection refused" in lowered or "socket closed" in lowered or "connection reset" in lowered:
        return Failure.UNREACHABLE
    if NO_AVAILABLE_VERSIONS in lowered:
        return Failure.RELOADING
    if "NOT_FOUND" in status or "unknown model" in lowered:
        return Failure.NOT_FOUND
    if "INVALID_ARG" in status:
        return Failure.INVALID
    if any(word in lowered for word in ("not ready", "unavailable", "server is stopping", "shutting down")):
        return Failure.NOT_READY
    return Failure.SERVER_ERROR


def dropped_connection(exc: BaseException) -> bool:
    """The peer went away or could not be reached (sockets, geventhttpclient, aiohttp)."""
    if isinstance(exc, (ConnectionError, OSError)):
        return True
    return any(cls.__name__ in _DROPPED_CONNECTION_CLASSES for cls in type(exc).__mro__)


def classify(exc: BaseException) -> Classified:
    """The kind of any exception a Triton client call raised."""
    status_of, message_of = getattr(exc, "status", None), getattr(exc, "message", None)
    if callable(status_of) and callable(message_of):  # tritonclient's InferenceServerException
        message = message_of() or str(exc)
        return Classified(classify_status(str(status_of() or ""), message), message)
    code_of, details_of = getattr(exc, "code", None), getattr(exc, "details", None)
    if callable(code_of) and callable(details_of):  # grpc.RpcError / grpc.aio.AioRpcError
        code = code_of()
        message = details_of() or str(exc)
        return Classified(classify_status(str(getattr(code, "name", code) or ""), message), message)
    text = f"{type(exc).__name__}: {exc}"
    if dropped_connection(exc):
        return Classified(Failure.UNREACHABLE, text, answered=False)
    return Classified(Failure.SERVER_ERROR, text, answered=False)
