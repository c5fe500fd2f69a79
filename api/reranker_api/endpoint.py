"""What every rerank route shares: auth, body reading and validation, error rendering in the
route's API style, and the request facts the access log records (never any text)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from reranker_api.auth import ApiKeys
from reranker_api.backend import Backend
from reranker_api.bodies import read_json
from reranker_api.errors import ApiError, error_response
from reranker_api.metrics import Metrics
from reranker_api.rerank_service import RerankService
from reranker_api.schemas import ExtraOptions
from reranker_api.settings import Settings
from reranker_core.options import LONG_PASSAGES, NORMALIZE, TRUNCATE_OPTION

log = logging.getLogger("reranker_api")
M = TypeVar("M", bound=BaseModel)
EXTRA_OPTIONS = tuple(ExtraOptions.model_fields)  # named as reranker_core.options names them


@dataclass
class Context:
    settings: Settings
    backend: Backend
    service: RerankService
    metrics: Metrics
    keys: ApiKeys


def validation_message(error: ValidationError, limit: int = 3) -> str:
    """'`texts[2]`: Input should be a valid string; ...' (the offending values are never echoed)."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:limit]:
        where = ""
        for loc in item["loc"]:
            where += f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if where else str(loc))
        parts.append(f"`{where}`: {item['msg']}" if where else item["msg"])
    more = error.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def validate(model: type[M], data: Any) -> M:
    if not isinstance(data, dict):
        raise ApiError("validation", f"the request body must be a JSON object, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError("validation", validation_message(exc)) from None


def option_fields(
    body: ExtraOptions, *, normalize: bool, truncate: bool, long_passages: str
) -> dict[str, Any]:
    """A request's scoring options under reranker_core.options' names (null fields left out: the
    model's defaults), the service's long-passage policy by default. The service checks them
    against the model once (reranker_core.options.parse_options)."""
    fields = {name: getattr(body, name) for name in EXTRA_OPTIONS if getattr(body, name) is not None}
    fields[NORMALIZE] = normalize
    fields[TRUNCATE_OPTION] = truncate
    fields[LONG_PASSAGES] = body.long_passages or long_passages
    return fields


Handler = Callable[[Request, Any], Awaitable[Response]]


async def run(
    request: Request, ctx: Context, style: str, schema: type[M], handler: Callable[[M], Awaitable[Response]]
) -> Response:
    """Authenticate, read and validate the body, run the handler; any failure becomes one
    error response in `style`, counted in reranker_api_errors_total{type}."""
    try:
        ctx.keys.check(request.headers.get("authorization"))
        body = validate(schema, await read_json(request, ctx.settings.max_body_bytes))
        return await handler(body)
    except ApiError as exc:
        return failed(request, ctx, style, exc)
    except Exception:  # a bug: log it (no request content), answer 500, keep serving
        log.exception("unexpected error on %s", request.url.path)
        return failed(request, ctx, style, ApiError("internal", "internal server error"))


def failed(request: Request, ctx: Context, style: str, exc: ApiError) -> Response:
    ctx.metrics.errors.labels(exc.kind).inc()
    request.state.error = exc.kind
    return error_response(exc, style)


def note(request: Request, model: str, documents: int) -> None:
    """Facts for the access log."""
    request.state.model = model
    request.state.documents = documents
