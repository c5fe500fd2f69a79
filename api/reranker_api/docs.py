"""The OpenAPI document (GET /openapi.json) and its Swagger UI page (GET /docs). The routes read
their bodies themselves (size limit, strict JSON), so their request schemas are attached here
rather than by FastAPI. The page's script, style and icon are served from the installed
swagger-ui-py package (/docs/assets/...), never from a CDN: it works in an air-gapped cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import swagger_ui
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from reranker_api.errors import NIM, TEI
from reranker_api.schemas import CohereError, NimError, TeiError

REF = "#/components/schemas/{model}"
ERROR_MODELS = {TEI: TeiError, NIM: NimError}
DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
SWAGGER_UI_ASSETS = Path(swagger_ui.__file__).parent / "static"  # Swagger UI 5 (OpenAPI 3.1)
DOCS_ASSETS = {  # the files the page loads, and their media types
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    defs[model.__name__] = schema
    return {"$ref": REF.format(model=model.__name__)}


def _defs(app: FastAPI) -> dict[str, Any]:
    """Schemas collected for this app's OpenAPI components."""
    if not hasattr(app.state, "schema_defs"):
        app.state.schema_defs = {}
    return app.state.schema_defs


def doc_route(
    app: FastAPI,
    path: str,
    endpoint: Callable,
    request_model: type[BaseModel],
    response_model: Any,
    style: str,
    *,
    summary: str,
    include: bool = True,
    tags: Sequence[str] | None = None,
) -> None:
    """Register a POST route whose OpenAPI entry shows the request schema and the API's error body."""
    defs = _defs(app)
    body = _schema(request_model, defs) if include else {}
    error = ERROR_MODELS.get(style, CohereError)
    app.add_api_route(
        path,
        endpoint,
        methods=["POST"],
        summary=summary,
        include_in_schema=include,
        tags=list(tags or []),
        response_model=None,
        responses={
            200: {"model": response_model, "description": "Scores, best first"},
            400: {"model": error, "description": "Invalid request"},
            401: {"model": error, "description": "Missing or wrong API key"},
            413: {"model": error, "description": "Body over the size limit"},
            422: {"model": error, "description": "Validation failed (TEI)"},
            429: {"model": error, "description": "Too many requests in flight"},
            503: {"model": error, "description": "Triton or the model is not ready (Retry-After)"},
            504: {"model": error, "description": "Triton did not answer in time"},
        },
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": body}}}}
        if include
        else None,
    )


def install_openapi(app: FastAPI) -> None:
    """app.openapi() with the request-body schemas collected by doc_route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(_defs(app))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_docs(app: FastAPI) -> None:
    """GET /docs: Swagger UI on this app's OpenAPI document, every asset served by the app itself
    (the app is created with FastAPI's CDN-based docs_url and redoc_url off)."""

    async def asset(name: str) -> Response:
        if name not in DOCS_ASSETS:
            return Response(status_code=404)
        return FileResponse(SWAGGER_UI_ASSETS / name, media_type=DOCS_ASSETS[name])

    async def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        assets = root + ASSETS_PATH
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
        )

    app.add_api_route(DOCS_PATH, docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(ASSETS_PATH + "/{name}", asset, methods=["GET"], include_in_schema=False)
