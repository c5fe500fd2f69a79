"""GET /health, /v1/health/live, /v1/health/ready, /v1/models, /metrics."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request

from reranker_api.backend import BackendError, Readiness
from reranker_api.endpoint import Context, failed
from reranker_api.errors import COHERE, ApiError
from reranker_api.schemas import ModelList


async def readiness(ctx: Context) -> Readiness:
    """Ready when Triton is ready and so is the default model (or, without one, every served model);
    a model whose last request found it unavailable must also answer a real one-pair request."""
    try:
        if ctx.settings.default_model:
            models = [(await ctx.backend.resolve(ctx.settings.default_model)).name]
        else:
            models = [m.name for m in await ctx.backend.models()]
    except BackendError as exc:
        return Readiness(False, exc.message)
    if not models:
        return Readiness(False, "no reranker model is being served")
    for name in models:
        state = await ctx.backend.readiness(name)
        if state.ready and name in ctx.service.failing:
            state = await ctx.service.probe(name)
        if not state.ready:
            return state
    return Readiness(True, "ready: " + ", ".join(models))


def register(app: FastAPI, ctx: Context) -> None:
    retry_after = {"Retry-After": str(ctx.settings.retry_after_s)}

    @app.get("/health", tags=["service"], summary="Ready when Triton and the model(s) are ready (else 503)")
    async def health() -> JSONResponse:
        state = await readiness(ctx)
        if state.ready:
            return JSONResponse({"status": "ok", "message": state.reason})
        return JSONResponse(
            {"error": state.reason, "error_type": "Unhealthy"}, status_code=503, headers=retry_after
        )

    @app.get("/v1/health/live", tags=["service"], summary="Live while the process runs (NIM shape)")
    async def live() -> JSONResponse:
        return JSONResponse({"object": "health.response", "message": "live", "status": "live"})

    @app.get("/v1/health/ready", tags=["service"], summary="Same as /health, NIM shape")
    async def ready() -> JSONResponse:
        state = await readiness(ctx)
        body = {
            "object": "health.response",
            "message": state.reason,
            "status": "ready" if state.ready else "not ready",
        }
        return JSONResponse(
            body, status_code=200 if state.ready else 503, headers=None if state.ready else retry_after
        )

    @app.get(
        "/v1/models",
        tags=["service"],
        summary="Served models (OpenAI / NIM list shape)",
        responses={200: {"model": ModelList}},
    )
    async def models(request: Request) -> Response:
        try:
            ctx.keys.check(request.headers.get("authorization"))
            served = await ctx.backend.models()
        except ApiError as exc:
            return failed(request, ctx, COHERE, exc)
        except BackendError as exc:
            return failed(request, ctx, COHERE, ctx.service.backend_error(exc))
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": m.name,
                        "object": "model",
                        "owned_by": "reranker-api",
                        "family": m.family or None,
                        "aliases": list(m.aliases),
                    }
                    for m in served
                ],
            }
        )

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics", include_in_schema=True)
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)
