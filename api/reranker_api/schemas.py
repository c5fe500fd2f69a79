"""Request and response shapes of the three APIs (pydantic: validation and the OpenAPI document).

Requests are validated strictly (a string is not a bool, a number is not a string); unknown keys
are ignored and null means "default", as the originals and their SDKs expect. Every shape also
takes the documented extra fields of `ExtraOptions`.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

STRICT = ConfigDict(strict=True, extra="ignore")


class ExtraOptions(BaseModel):
    """Extra fields (not in the original APIs) passed to the model; null or absent = the model's default."""
    model_config = STRICT
    max_length: Optional[int] = Field(None, ge=1, description="Tokens per (query, passage) pair (FlagEmbedding's max_length).")
    query_max_length: Optional[int] = Field(None, ge=1, description="Tokens kept of the query (default 3/4 of max_length).")
    long_passages: Optional[Literal["truncate", "max_window"]] = Field(
        None, description="Passages longer than max_length: truncate (default) or score windows and keep the best.")
    window_stride: Optional[int] = Field(None, ge=1, description="Token stride of the max_window policy.")
    prompt: Optional[str] = Field(None, description="LLM rerankers: the instruction (FlagEmbedding's prompt).")
    cutoff_layers: Optional[Union[int, list[int]]] = Field(
        None, description="Layerwise/lightweight rerankers: the layer(s) to score at; ranking uses the deepest.")
    compress_ratio: Optional[int] = Field(None, description="Lightweight reranker: token compression ratio (1, 2, 4, 8).")
    compress_layers: Optional[list[int]] = Field(None, description="Lightweight reranker: layers that compress.")


# --- TEI ------------------------------------------------------------------------------------------

class TeiRerankRequest(ExtraOptions):
    query: str
    texts: list[str]
    raw_scores: Optional[bool] = Field(False, description="Raw logits instead of sigmoid scores.")
    return_text: Optional[bool] = Field(False, description="Echo each text in its result.")
    truncate: Optional[bool] = Field(None, description="false: an input over the model's length is an error "
                                                       "(422); null: the server default (truncate).")
    truncation_direction: Optional[Literal["Right", "Left", "right", "left"]] = Field(
        "Right", description="Only Right is supported when truncating.")
    model: Optional[str] = Field(None, description="Extension: the served model (default: the server's default).")


class TeiRank(BaseModel):
    index: int
    score: float
    text: Optional[str] = None


# --- Cohere ---------------------------------------------------------------------------------------

CohereDocument = Union[str, dict[str, Any]]


class CohereV2RerankRequest(ExtraOptions):
    model: Optional[str] = Field(None, description="A served model; null = the server's default.")
    query: str
    documents: list[CohereDocument] = Field(..., description="Strings, or objects with a 'text' field.")
    top_n: Optional[int] = Field(None, ge=1, description="Return only the best top_n (default all).")
    max_tokens_per_doc: Optional[int] = Field(
        None, ge=1, description="Caps the tokens of each (query, document) pair (sets max_length, at most the model's).")
    priority: Optional[int] = Field(None, description="Accepted and ignored.")
    return_documents: Optional[bool] = Field(False, description="Include each document in its result.")
    rank_fields: Optional[list[str]] = Field(None, description="Object documents: the keys to rank on, in order.")


class CohereV1RerankRequest(CohereV2RerankRequest):
    max_chunks_per_doc: Optional[int] = Field(None, ge=1, description="Accepted and ignored (see long_passages).")


class CohereResult(BaseModel):
    index: int
    relevance_score: float
    document: Optional[dict[str, Any]] = None


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
    model: Optional[str] = Field(None, description="A served model; null = the server's default.")
    query: NimText
    passages: list[NimText]
    truncate: Optional[Literal["NONE", "END"]] = Field(
        "NONE", description="NONE: an input over the model's length is an error (400); END: truncate.")


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
    family: Optional[str] = None
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
