"""Exceptions raised by the reranker client. All derive from RerankerError."""
from __future__ import annotations


class RerankerError(Exception):
    """Base class of every error the client raises."""


class InvalidInputError(RerankerError, ValueError):
    """The pairs or arguments given to the client are not valid (raised before any request)."""


class ServerUnavailableError(RerankerError, ConnectionError):
    """The Triton server could not be reached."""


class ModelNotReadyError(RerankerError):
    """The model does not exist on the server or is not ready."""


class TokenizerMismatchError(RerankerError):
    """The tokenizer found for the client differs from the one the model was exported with."""


class InferenceError(RerankerError):
    """The server answered a request with an error (its message is kept)."""
