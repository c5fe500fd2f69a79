"""TEI `POST /rerank` (and its aliases `POST /` and `/invocations`).

Request {query, texts, raw_scores=false, return_text=false, truncate=null, truncation_direction="Right"}
-> 200 [{index, score, text?}] for every text, best first (equal scores: higher index first, as TEI).
Scores are sigmoid(logit) unless raw_scores. truncate=null means the server default (truncate, as
TEI >= 1.9 with auto-truncate); truncate=false with an over-long pair -> 422 Validation.
Truncation is from the right only: truncation_direction "Left" is refused while truncating.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request

from reranker_api.docs import doc_route
from reranker_api.endpoint import Context, note, option_fields, run
from reranker_api.errors import TEI, ApiError
from reranker_api.rerank_service import RerankJob
from reranker_api.schemas import TeiRank, TeiRerankRequest
from reranker_core.scores import ranking

PATHS = ("/rerank", "/", "/invocations")


def register(app: FastAPI, ctx: Context) -> None:
    async def rerank(request: Request) -> JSONResponse:
        async def handle(body: TeiRerankRequest) -> JSONResponse:
            truncate = True if body.truncate is None else body.truncate
            if truncate and (body.truncation_direction or "Right").lower() == "left":
                raise ApiError(
                    "validation",
                    "truncation_direction 'Left' is not supported: this server truncates from the right only",
                )
            options = option_fields(
                body,
                normalize=not body.raw_scores,
                truncate=truncate,
                long_passages=ctx.settings.long_passages,
            )
            job = RerankJob(body.model, body.query, body.texts, options, documents_field="texts")
            scored = await ctx.service.rank(job)
            note(request, scored.model.name, len(body.texts))
            row = scored.ranking_row
            values = row.tolist()
            out = []
            for i in ranking(row, ties_high_index_first=True):
                item = {"index": i, "score": values[i]}
                if body.return_text:
                    item["text"] = body.texts[i]
                out.append(item)
            return JSONResponse(out)

        return await run(request, ctx, TEI, TeiRerankRequest, handle)

    for i, path in enumerate(PATHS):
        doc_route(
            app,
            path,
            rerank,
            TeiRerankRequest,
            list[TeiRank],
            TEI,
            summary="TEI rerank" if i == 0 else "TEI rerank (alias of /rerank)",
            include=i == 0,
            tags=["TEI"],
        )
