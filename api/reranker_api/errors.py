"""Errors as each API writes them.

An `ApiError` carries a kind (also the `type` label of reranker_api_errors_total) and a message;
`error_response` renders it in the caller's API style:

| kind | TEI status, error_type | Cohere / NIM status |
|---|---|---|
| malformed_json | 400 Validation | 400 |
| unsupported_media_type | 415 Validation | 415 |
| body_too_large | 413 Validation | 413 |
| validation, too_many_documents | 422 Validation | 400 |
| empty | 400 Empty | 400 |
| unauthorized | 401 Unauthorized | 401 |
| model_not_found | 404 Validation | 404 |
| overloaded | 429 Overloaded | 429 |
| backend | 424 Backend | 500 |
| unavailable | 503 Unhealthy (+ Retry-After) | 503 (+ Retry-After) |
| timeout | 504 Backend | 504 |
| internal | 500 Backend | 500 |

Bodies: TEI `{"error", "error_type"}`, Cohere `{"message"}`, NIM `{"error"}`.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

TEI, COHERE, NIM = "tei", "cohere", "nim"

# kind -> (status for Cohere/NIM, status for TEI, TEI error_type)
KINDS: dict[str, tuple[int, int, str]] = {
    "malformed_json": (400, 400, "Validation"),
    "unsupported_media_type": (415, 415, "Validation"),
    "body_too_large": (413, 413, "Validation"),
    "validation": (400, 422, "Validation"),
    "too_many_documents": (400, 422, "Validation"),
    "empty": (400, 400, "Empty"),
    "unauthorized": (401, 401, "Unauthorized"),
    "model_not_found": (404, 404, "Validation"),
    "overloaded": (429, 429, "Overloaded"),
    "backend": (500, 424, "Backend"),
    "unavailable": (503, 503, "Unhealthy"),
    "timeout": (504, 504, "Backend"),
    "internal": (500, 500, "Backend"),
}


class ApiError(Exception):
    """A request failed; `kind` is one of KINDS."""

    def __init__(self, kind: str, message: str, retry_after_s: int | None = None) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after_s = retry_after_s

    def status(self, style: str) -> int:
        cohere_status, tei_status, _ = KINDS[self.kind]
        return tei_status if style == TEI else cohere_status


def error_body(error: ApiError, style: str) -> dict:
    if style == TEI:
        return {"error": error.message, "error_type": KINDS[error.kind][2]}
    if style == NIM:
        return {"error": error.message}
    return {"message": error.message}


def error_response(error: ApiError, style: str) -> JSONResponse:
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(error.retry_after_s)
    if error.kind == "unauthorized":
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(error, style), status_code=error.status(style), headers=headers)
