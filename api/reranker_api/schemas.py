"""Request and response shapes of the three APIs (pydantic: validation and the OpenAPI document).

Requests are validated strictly (a string is not a bool, a number is not a string); unknown keys
are ignored and null means "default", as the originals and their SDKs expect. Every shape also
takes the documented extra fields of `ExtraOptions`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(strict=True, extra="ignore")


class ExtraOptions(BaseModel):
    """Extra fields (not in the original APIs) passed to the model; null or absent = the model's default."""

    model_config = STRICT
    max_length: int | None = Field(
        None, ge=1, description="Tokens per (query, passage) pair (FlagEmbedding's max_length)."
    )
    query_max_length: int | None = Field(
        None, ge=1, description="Tokens kept of the query (default 3/4 of max_length)."
    )
    long_passages: Literal["truncate", "max_window"] | None = Field(
        None,
        description="Passages longer than max_length: truncate (default) or score windows and keep the best.",
    )
    window_stride: int | None = Field(None, ge=1, description="Token stride of the max_window policy.")
    prompt: str | None = Field(None, description="LLM rerankers: the instruction (FlagEmbedding's prompt).")
    cutoff_layers: int | list[int] | None = Field(
        None,
        description="Layerwise/lightweight rerankers: the layer(s) to score at; ranking uses the deepest.",
    )
    compress_ratio: int | None = Field(
        None, description="Lightweight reranker: token compression ratio (1, 2, 4, 8)."
    )
    compress_layers: list[int] | None = Field(None, description="Lightweight reranker: layers that compress.")


# --- TEI ------------------------------------------------------------------------------------------


class TeiRerankRequest(ExtraOptions):
    query: str
    texts: list[str]
    raw_scores: bool | None = Field(False, description="Raw logits instead of sigmoid scores.")
    return_text: bool | None = Field(False, description="Echo each text in its result.")
    truncate: bool | None = Field(
        None,
        description="false: an input over the model's length is an error "
        "(422); null: the server default (truncate).",
    )
    truncation_direction: Literal["Right", "Left", "right", "left"] | None = Field(
        "Right", description="Only Right is supported when truncating."
    )
    model: str | None = Field(
        None, description="Extension: the served model (default: the server's default)."
    )


class TeiRank(BaseModel):
    index: int
    score: float
    text: str | None = None


# --- Cohere ---------------------------------------------------------------------------------------

CohereDocument = str | dict[str, Any]


class CohereV2RerankRequest(ExtraOptions):
    model: str | None = Field(None, description="A served model; null = the server's default.")
    query: str
    documents: list[CohereDocument] = Field(..., description="Strings, or objects with a 'text' field.")
    top_n: int | None = Field(None, ge=1, description="Return only the best top_n (default all).")
    max_tokens_per_doc: int | None = Field(
        None,
        ge=1,
        description="Caps the tokens of each (query, document) pair (sets max_length, at most the model's).",
    )
    priority: int | None = Field(None, description="Accepted and ignored.")
    return_documents: bool | None = Field(False, description="Include each document in its result.")
    rank_fields: list[str] | None = Field(
        None, description="Object documents: the keys to rank on, in order."
    )


class CohereV1RerankRequest(CohereV2RerankRequest):
    max_chunks_per_doc: int | None = Field(
        None, ge=1, description="Accepted and ignored (see long_passages)."
    )


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class CohereApiVersion(BaseModel):
    version: str


class CohereBilledUnits(BaseModel):
    search_units: int


class CohereMeta(BaseModel):
    api_version: CohereApiVersion
    billed_units: CohereBilledUnits


class CohereRerankResponse(BaseModel):
    id: str
    results: list[CohereResult]
    meta: CohereMeta


# --- NVIDIA NIM -----------------------------------------------------------------------------------


class NimText(BaseModel):
    model_config = STRICT
    text: str


class NimRankingRequest(ExtraOptions):
    model: str | None = Field(None, description="A served model; null = the server's default.")
    query: NimText
    passages: list[NimText]
    truncate: Literal["NONE", "END"] | None = Field(
        "NONE", description="NONE: an input over the model's length is an error (400); END: truncate."
    )


class NimRanking(BaseModel):
    index: int
    logit: float


class NimRankingResponse(BaseModel):
    rankings: list[NimRanking]


# --- shared ---------------------------------------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: str = "model"
    owned_by: str = "reranker-api"
    family: str | None = None
    aliases: list[str] = []


class ModelList(BaseModel):
    object: str = "list"
    data: list[ModelCard]


class TeiError(BaseModel):
    error: str
    error_type: str


class CohereError(BaseModel):
    message: str


class NimError(BaseModel):
    error: str
