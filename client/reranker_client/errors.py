"""Exceptions raised by the reranker client. All derive from RerankerError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from reranker_core.errors import InputError
from reranker_core.triton_errors import Classified, Failure, classify


class RerankerError(Exception):
    """Base class of every error the client raises."""


class InvalidInputError(RerankerError, InputError):
    """The pairs or arguments given to the client are not valid (raised before any request)."""


class ServerUnavailableError(RerankerError, ConnectionError):
    """The Triton server (or the model's backend process) could not be reached. Retried."""


class ModelNotReadyError(RerankerError):
    """The model does not exist on the server or failed to load. Not retried."""


class ModelReloadingError(ModelNotReadyError):
    """The server knows the model but has no loaded version right now (being loaded, unloaded or
    reloaded). Retried: a later attempt may find it ready."""


class TokenizerMismatchError(RerankerError):
    """The tokenizer found for the client differs from the one the model was exported with."""


class InferenceError(RerankerError):
    """The server answered a request with an error (its message is kept)."""


class RequestTimeoutError(InferenceError):
    """A request attempt ran past the client's timeout_s (or what was left of the retry deadline).
    Not retried: the time budget is spent."""


@contextmanager
def caller_errors() -> Iterator[None]:
    """Raise the shared core's InputError (and encoding ValueError/TypeError) as InvalidInputError."""
    try:
        yield
    except InvalidInputError:
        raise
    except (InputError, ValueError, TypeError) as exc:
        raise InvalidInputError(str(exc)) from exc


class AttemptTimeout(Exception):
    """Raised by a transport when a request ran past the attempt's timeout (socket-level timeouts,
    e.g. while connecting, stay OSErrors: the server is unreachable)."""


def map_exception(exc: BaseException, url: str, model: str) -> RerankerError:
    """The client's exception for a tritonclient / socket error, from the shared classification
    (reranker_core.triton_errors); the original is kept as its cause. Exactly the replica failures
    become retryable errors (ServerUnavailableError, ModelReloadingError)."""
    if isinstance(exc, RerankerError):
        return exc
    if isinstance(exc, AttemptTimeout):
        mapped: RerankerError = RequestTimeoutError(f"request to {model} timed out on the client: {exc}")
    else:
        mapped = _mapped(classify(exc), url, model)
    if mapped.__cause__ is None:
        mapped.__cause__ = exc
    return mapped


def _mapped(failure: Classified, url: str, model: str) -> RerankerError:
    kind, message = failure.kind, failure.message
    if kind is Failure.RESTRICTED:
        return InferenceError(
            f"the server refused {model!r}: a restricted API needs its key header (headers=...): {message}"
        )
    if kind is Failure.UNREACHABLE:
        return ServerUnavailableError(f"Triton server at {url} is unreachable: {message}")
    if kind is Failure.BACKEND_GONE:
        return ServerUnavailableError(
            f"model {model!r} on {url} is unavailable: its backend process "
            f"crashed and must be reloaded or the server restarted ({message})"
        )
    if kind is Failure.NOT_READY:
        return ServerUnavailableError(f"model {model!r} on {url} is not ready: {message}")
    if kind is Failure.TIMEOUT:
        return RequestTimeoutError(f"request to {model} timed out (timeout_s): {message}")
    if kind is Failure.RELOADING:
        return ModelReloadingError(
            f"model {model!r} on {url} has no available versions right now "
            f"(being loaded or reloaded): {message}"
        )
    if kind is Failure.NOT_FOUND:
        return ModelNotReadyError(f"model {model!r} not found on {url}: {message}")
    if failure.answered:
        return InferenceError(f"server error from {model}: {message}")
    return InferenceError(f"request to {model} failed: {message}")
