"""Exceptions raised by the reranker client. All derive from RerankerError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from reranker_core.errors import InputError


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
