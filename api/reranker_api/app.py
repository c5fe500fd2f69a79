"""The FastAPI application: TEI, Cohere and NIM routes over one RerankService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from reranker_api.auth import ApiKeys
from reranker_api.backend import Backend
from reranker_api.docs import install_docs, install_openapi
from reranker_api.endpoint import Context
from reranker_api.metrics import Metrics
from reranker_api.observe import Observe
from reranker_api.rerank_service import RerankService
from reranker_api.routes import cohere, nim, status, tei
from reranker_api.settings import Settings
from reranker_api.triton import TritonBackend
from reranker_core.endpoints import PoolOptions

DESCRIPTION = """Rerank HTTP API in front of the BGE rerankers served by Triton, wire-compatible with
Hugging Face TEI (`POST /rerank`), Cohere (`POST /v2/rerank`, `POST /v1/rerank`) and NVIDIA NIM
(`POST /v1/ranking`). Every shape also takes the extra fields `max_length`, `query_max_length`,
`long_passages`, `window_stride`, `prompt`, `cutoff_layers`, `compress_ratio`, `compress_layers`."""


def create_app(settings: Settings, backend: Backend | None = None) -> FastAPI:
    """The app; without a backend, the Triton one for settings.triton_url."""
    if backend is None:
        backend = TritonBackend(
            settings.triton_url,
            models=settings.models,
            suffix=settings.text_suffix,
            pool=PoolOptions(refresh_s=settings.dns_refresh_s),
        )
    metrics = Metrics(endpoints=getattr(backend, "endpoints", None))
    ctx = Context(
        settings, backend, RerankService(backend, settings, metrics), metrics, ApiKeys(settings.api_keys)
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await backend.close()

    app = FastAPI(
        title="BGE reranker API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        root_path=settings.root_path,
        docs_url=None,  # install_docs: Swagger UI with its assets served here, not from a CDN
        redoc_url=None,
    )
    app.state.ctx = ctx
    for module in (tei, cohere, nim, status):
        module.register(app, ctx)
    install_openapi(app)
    install_docs(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-Id"],
        )
    app.add_middleware(Observe, metrics=metrics, log_requests=settings.access_log)
    return app
