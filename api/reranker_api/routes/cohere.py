"""Cohere `POST /v2/rerank` and `POST /v1/rerank`.

Request {model, query, documents, top_n, max_tokens_per_doc, return_documents, rank_fields, ...}
-> 200 {id, results: [{index, relevance_score, document?}], meta: {api_version, billed_units}},
best first (equal scores: lower index first), min(top_n, n) results, relevance_score = sigmoid(logit)
in [0, 1]. Documents are strings or objects with a `text` field; with `rank_fields`, an object is
scored as the lines "key: value" of those fields in that order. `return_documents` returns
{"text": ...} for a string document and the whole object otherwise. `max_tokens_per_doc` sets the
(query, document) pair's max_length, at most the model's positions. `model` null = the default.
Errors: {"message": ...}.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from reranker_api.docs import doc_route
from reranker_api.endpoint import Context, note, option_fields, run
from reranker_api.errors import COHERE, ApiError
from reranker_api.rerank_service import RerankJob
from reranker_api.schemas import CohereRerankResponse, CohereV1RerankRequest, CohereV2RerankRequest
from reranker_core.scores import ranking


def document_text(doc: str | dict[str, Any], i: int, rank_fields: Sequence[str] | None) -> str:
    """The text scored for one document."""
    if isinstance(doc, str):
        return doc
    if rank_fields:
        parts = []
        for key in rank_fields:
            value = doc.get(key)
            if not isinstance(value, str):
                raise ApiError(
                    "validation", f"`documents[{i}].{key}` must be a string (named in rank_fields)"
                )
            parts.append(f"{key}: {value}")
        return "\n".join(parts)
    text = doc.get("text")
    if not isinstance(text, str):
        raise ApiError("validation", f"`documents[{i}]` is an object without a string 'text' field")
    return text


def register(app: FastAPI, ctx: Context) -> None:
    def route(version: str, schema: type):
        async def rerank(request: Request) -> JSONResponse:
            async def handle(body: CohereV2RerankRequest) -> JSONResponse:
                texts = [document_text(d, i, body.rank_fields) for i, d in enumerate(body.documents)]
                options = option_fields(
                    body, normalize=True, truncate=True, long_passages=ctx.settings.long_passages
                )
                job = RerankJob(
                    body.model,
                    body.query,
                    texts,
                    options,
                    documents_field="documents",
                    length_cap=body.max_tokens_per_doc,
                )
                scored = await ctx.service.rank(job)
                note(request, scored.model.name, len(texts))
                row = scored.ranking_row
                values = row.tolist()
                order = ranking(row, body.top_n)
                results = []
                for i in order:
                    item: dict[str, Any] = {"index": i, "relevance_score": values[i]}
                    if body.return_documents:
                        doc = body.documents[i]
                        item["document"] = {"text": doc} if isinstance(doc, str) else doc
                    results.append(item)
                return JSONResponse(
                    {
                        "id": request.state.request_id
                        if hasattr(request.state, "request_id")
                        else str(uuid.uuid4()),
                        "results": results,
                        "meta": {"api_version": {"version": version}, "billed_units": {"search_units": 1}},
                    }
                )

            return await run(request, ctx, COHERE, schema, handle)

        return rerank

    doc_route(
        app,
        "/v2/rerank",
        route("2", CohereV2RerankRequest),
        CohereV2RerankRequest,
        CohereRerankResponse,
        COHERE,
        summary="Cohere rerank (v2)",
        tags=["Cohere"],
    )
    doc_route(
        app,
        "/v1/rerank",
        route("1", CohereV1RerankRequest),
        CohereV1RerankRequest,
        CohereRerankResponse,
        COHERE,
        summary="Cohere rerank (v1)",
        tags=["Cohere"],
    )
