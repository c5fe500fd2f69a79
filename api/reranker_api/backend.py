"""What the HTTP layer needs from a scoring backend, independent of Triton.

`TritonBackend` (triton.py) is the real one; tests use an in-process fake with the same interface.
Every failure a backend raises is one of the `BackendError` subclasses below, which the HTTP layer
turns into each API's own status code and error body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from reranker_core.manifest import ModelManifest
from reranker_core.options import ScoreOptions


@dataclass(frozen=True)
class ModelInfo:
    """A served model: its public name, the names that also select it (the text model's name and
    the hub id, never a filesystem path) and its manifest (None while it cannot be read)."""

    name: str
    aliases: tuple[str, ...] = ()
    manifest: ModelManifest | None = None

    @property
    def family(self) -> str:
        return self.manifest.family if self.manifest else ""


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str = ""


class BackendError(Exception):
    """Base class: a request could not be scored."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnavailable(BackendError):
    """The inference server is unreachable, or the model is not ready (loading, crashed, unloaded)."""


class BackendTimeout(BackendError):
    """The inference server did not answer within the request timeout."""


class InvalidRequest(BackendError):
    """The model refused the input (empty text, over-long input with truncation off, bad option...)."""


class ModelNotFound(BackendError):
    """No served model has that name."""


class BackendFailure(BackendError):
    """The model failed while scoring (an internal error, or a non-finite score)."""


class Backend(Protocol):
    """Scores one query against passages with a served text model."""

    async def score(
        self,
        model: str,
        query: bytes,
        passages: Sequence[bytes],
        options: ScoreOptions | None,
        timeout_s: float | None,
    ) -> np.ndarray:
        """UTF-8 query and passages -> raw scores (logits) in passage order, shape
        [layers, len(passages)]; options None: the model's defaults.

        One row unless several cutoff layers (ascending); raises a BackendError."""
        ...

    async def models(self) -> list[ModelInfo]:
        """The served models (may ask the server)."""
        ...

    async def resolve(self, name: str) -> ModelInfo:
        """The served model called `name` (or one of its aliases); raises ModelNotFound."""
        ...

    async def readiness(self, model: str) -> Readiness:
        """Whether the server and that model can take requests now."""
        ...

    async def close(self) -> None: ...
