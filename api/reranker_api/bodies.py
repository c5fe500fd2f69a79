"""Reading a JSON request body safely: a size limit enforced before and while reading, strict
UTF-8, and every parser failure (syntax, deep nesting, huge numbers) turned into a clean ApiError."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from reranker_api.errors import ApiError


def check_content_type(request: Request) -> None:
    """Require a JSON content type, as TEI does (415 otherwise)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise ApiError(
            "unsupported_media_type", f"expected 'Content-Type: application/json', got {media or 'none'!r}"
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, at most `limit` bytes: a larger declared Content-Length is refused before
    reading, a larger streamed body as soon as it passes the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError("malformed_json", "invalid Content-Length header")
        if int(declared) > limit:
            raise ApiError(
                "body_too_large", f"request body of {int(declared)} bytes is over the limit of {limit} bytes"
            )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError("body_too_large", f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The decoded JSON value; ApiError('malformed_json') naming the problem otherwise."""
    if not body.strip():
        raise ApiError("malformed_json", "request body is empty: expected a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("malformed_json", f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(
            "malformed_json", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # CPython's decoder stops deep nesting with RecursionError
        raise ApiError("malformed_json", "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ApiError("malformed_json", f"malformed JSON: {exc}") from None


async def read_json(request: Request, limit: int) -> Any:
    check_content_type(request)
    return parse_json(await read_body(request, limit))
