"""Scoring one rerank request, whatever its wire shape: limits, model choice, the backend call
with its timeout and concurrency bound, and backend errors turned into ApiErrors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from reranker_api.backend import (
    Backend,
    BackendError,
    BackendFailure,
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
    ModelInfo,
    ModelNotFound,
    Readiness,
)
from reranker_api.errors import ApiError
from reranker_api.metrics import Metrics
from reranker_api.settings import PROBE_TIMEOUT_S, Settings
from reranker_core.errors import InputError
from reranker_core.options import MAX_LENGTH, ScoreOptions, parse_options
from reranker_core.scores import normalized

T = TypeVar("T")
TIMEOUT_MARGIN_S = 2.0  # the backend's own deadline fires first; this only guards against a hang


@dataclass
class RerankJob:
    """One request in shape-neutral form; the field names are the caller's, for error messages.
    `options` are still unchecked, under reranker_core.options' names (endpoint.option_fields)."""

    model: str | None
    query: str
    documents: Sequence[str]
    options: Mapping[str, Any]
    documents_field: str = "documents"
    query_field: str = "query"
    length_cap: int | None = None  # Cohere max_tokens_per_doc: max_length, at most the model's


@dataclass
class Scored:
    model: ModelInfo
    scores: np.ndarray  # [layers, n], sigmoid when the options say normalize; rank by the last row

    @property
    def ranking_row(self) -> np.ndarray:
        return self.scores[-1]


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """`awaitable` under a deadline (asyncio.TimeoutError after it); asyncio.timeout where it
    exists (no extra task per request), else wait_for."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


def encode_text(text: str, field: str, max_bytes: int, index: int | None = None) -> bytes:
    """UTF-8 bytes of one query or document (`field`, or item `index` of it), or an ApiError
    naming it. The name is only formatted on error: this runs for every document."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        problem = "is not valid Unicode (it holds a lone surrogate)"
    else:
        if len(data) > max_bytes:
            problem = f"has {len(data)} bytes, over the limit of {max_bytes} bytes"
        elif not text or text.isspace():
            problem = "is empty"
        else:
            return data
    where = field if index is None else f"{field}[{index}]"
    raise ApiError("validation", f"`{where}` {problem}")


class RerankService:
    def __init__(self, backend: Backend, settings: Settings, metrics: Metrics) -> None:
        self.backend = backend
        self.settings = settings
        self.metrics = metrics
        self._in_flight = 0
        # Models whose last request found them unavailable (e.g. a dead backend process that Triton
        # still reports READY); /health probes them with a real request until one succeeds.
        self.failing: dict[str, str] = {}

    def encode(self, job: RerankJob) -> tuple[bytes, list[bytes]]:
        """Check the request against the limits; the UTF-8 texts."""
        n = len(job.documents)
        if n == 0:
            raise ApiError("empty", f"`{job.documents_field}` must not be empty")
        if n > self.settings.max_documents:
            raise ApiError(
                "too_many_documents",
                f"`{job.documents_field}` has {n} items, more than the limit "
                f"of {self.settings.max_documents}",
            )
        limit = self.settings.max_text_bytes
        query = encode_text(job.query, job.query_field, limit)
        field = job.documents_field
        return query, [encode_text(d, field, limit, i) for i, d in enumerate(job.documents)]

    async def resolve(self, name: str | None) -> ModelInfo:
        """The model a request names, or the default: the configured one, else the only one served."""
        name = name or self.settings.default_model
        try:
            if name:
                return await self.backend.resolve(name)
            models = await self.backend.models()
        except ModelNotFound as exc:
            raise ApiError("model_not_found", exc.message) from None
        except BackendError as exc:
            raise self.backend_error(exc) from None
        if len(models) == 1:
            return models[0]
        if not models:
            raise ApiError("unavailable", "no reranker model is being served", self.settings.retry_after_s)
        raise ApiError(
            "validation", "`model` is required: this server serves " + ", ".join(m.name for m in models)
        )

    def options(self, job: RerankJob, info: ModelInfo) -> ScoreOptions:
        """The job's options checked once against the model's manifest."""
        if info.manifest is None:
            raise ApiError(
                "unavailable",
                f"model {info.name!r}: its manifest could not be read from Triton",
                self.settings.retry_after_s,
            )
        fields = dict(job.options)
        if job.length_cap is not None and fields.get(MAX_LENGTH) is None:
            fields[MAX_LENGTH] = min(job.length_cap, info.manifest.max_positions)
        try:
            return parse_options(fields, info.manifest)
        except InputError as exc:
            raise ApiError("validation", str(exc)) from None

    def backend_error(self, exc: BackendError) -> ApiError:
        if isinstance(exc, BackendUnavailable):
            return ApiError("unavailable", exc.message, self.settings.retry_after_s)
        if isinstance(exc, BackendTimeout):
            return ApiError("timeout", exc.message)
        if isinstance(exc, InvalidRequest):
            return ApiError("validation", exc.message)
        if isinstance(exc, ModelNotFound):
            return ApiError("model_not_found", exc.message)
        return ApiError("backend", exc.message)

    async def probe(self, model: str) -> Readiness:
        """Score one tiny pair: whether the model really answers (not only reports READY)."""
        try:
            await asyncio.wait_for(
                self.backend.score(model, b"health check", [b"ok"], None, PROBE_TIMEOUT_S),
                PROBE_TIMEOUT_S + TIMEOUT_MARGIN_S,
            )
        except (BackendError, asyncio.TimeoutError) as exc:
            return Readiness(
                False, getattr(exc, "message", "") or f"model {model!r} did not answer the probe"
            )
        self.failing.pop(model, None)
        return Readiness(True)

    async def rank(self, job: RerankJob) -> Scored:
        """All scores of the job, or one ApiError: never partial results."""
        query, documents = self.encode(job)
        info = await self.resolve(job.model)
        options = self.options(job, info)
        if self._in_flight >= self.settings.max_concurrent_requests:
            raise ApiError(
                "overloaded", f"the server is scoring {self._in_flight} requests, its limit; retry later"
            )
        self._in_flight += 1
        self.metrics.in_flight.inc()
        timeout = self.settings.request_timeout_s
        started = time.perf_counter()
        try:
            scores = await within(
                self.backend.score(info.name, query, documents, options, timeout), timeout + TIMEOUT_MARGIN_S
            )
        except BackendError as exc:
            if isinstance(exc, BackendUnavailable):
                self.failing[info.name] = exc.message
            raise self.backend_error(exc) from None
        except asyncio.TimeoutError:
            raise ApiError("timeout", f"model {info.name!r} did not answer within {timeout:g} s") from None
        finally:
            self._in_flight -= 1
            self.metrics.in_flight.dec()
            self.metrics.backend_duration.labels(info.name).observe(time.perf_counter() - started)
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim == 1:
            scores = scores.reshape(1, -1)
        if scores.ndim != 2 or scores.shape[1] != len(documents):
            raise self.backend_error(
                BackendFailure(
                    f"model {info.name!r} returned scores of shape {list(scores.shape)} "
                    f"for {len(documents)} documents"
                )
            )
        if not np.isfinite(scores).all():
            raise self.backend_error(BackendFailure(f"model {info.name!r} returned a non-finite score"))
        self.failing.pop(info.name, None)
        self.metrics.pairs.labels(info.name).inc(len(documents))
        return Scored(info, normalized(scores, options.normalize))
