"""ASGI middleware: request id, request count and latency metrics, and one JSON access-log line
per request (method, route, status, duration, model, document count, error type; never texts,
never headers such as Authorization)."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from reranker_api.metrics import Metrics

access_log = logging.getLogger("reranker_api.access")
ROUTES = frozenset(
    {
        "/rerank",
        "/",
        "/invocations",
        "/v1/rerank",
        "/v2/rerank",
        "/v1/ranking",
        "/health",
        "/v1/health/live",
        "/v1/health/ready",
        "/v1/models",
        "/metrics",
        "/docs",
        "/openapi.json",
    }
)
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def route_label(path: str) -> str:
    """A bounded label: the known routes, else 'other'."""
    return path if path in ROUTES else "other"


class Observe:
    def __init__(self, app: Any, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + [(b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_label(scope.get("path", ""))
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.duration.labels(route).observe(elapsed)
            if self.log_requests and route not in (
                "/metrics",
                "/health",
                "/v1/health/live",
                "/v1/health/ready",
            ):
                client = scope.get("client") or ("", 0)
                access_log.info(
                    json.dumps(
                        {
                            "ts": round(time.time(), 3),
                            "request_id": request_id,
                            "client": client[0],
                            "method": scope.get("method"),
                            "route": route,
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                            "model": state.get("model"),
                            "documents": state.get("documents"),
                            "error": state.get("error"),
                        }
                    )
                )
