"""NVIDIA NIM `POST /v1/ranking`.

Request {model, query: {text}, passages: [{text}], truncate: "NONE" (default) | "END"}
-> 200 {rankings: [{index, logit}]} for every passage, best first, raw logits.
truncate NONE with an over-long pair -> 400; END truncates. Errors: {"error": message}.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from reranker_api.docs import doc_route
from reranker_api.endpoint import Context, note, option_fields, run
from reranker_api.errors import NIM
from reranker_api.rerank_service import RerankJob
from reranker_api.schemas import NimRankingRequest, NimRankingResponse
from reranker_core.scores import ranking


def register(app: FastAPI, ctx: Context) -> None:
    async def ranking_route(request: Request) -> JSONResponse:
        async def handle(body: NimRankingRequest) -> JSONResponse:
            options = option_fields(
                body,
                normalize=False,
                truncate=(body.truncate or "NONE") == "END",
                long_passages=ctx.settings.long_passages,
            )
            passages = [p.text for p in body.passages]
            job = RerankJob(
                body.model,
                body.query.text,
                passages,
                options,
                documents_field="passages",
                query_field="query.text",
            )
            scored = await ctx.service.rank(job)
            note(request, scored.model.name, len(passages))
            row = scored.ranking_row
            values = row.tolist()
            return JSONResponse({"rankings": [{"index": i, "logit": values[i]} for i in ranking(row)]})

        return await run(request, ctx, NIM, NimRankingRequest, handle)

    doc_route(
        app,
        "/v1/ranking",
        ranking_route,
        NimRankingRequest,
        NimRankingResponse,
        NIM,
        summary="NVIDIA NIM ranking",
        tags=["NVIDIA NIM"],
    )
