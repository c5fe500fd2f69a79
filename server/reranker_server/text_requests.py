"""Validation of one text-model request: BYTES tensors + request parameters -> TextRequest.
Pure numpy / Python (no Triton), unit-tested directly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reranker_core.errors import InputError
from reranker_core.manifest import ModelManifest
from reranker_core.options import ScoreOptions, parse_options
from reranker_core.tensors import INDICES, PASSAGES, QUERIES, QUERY
from reranker_core.texts import check_text, text_from_utf8


@dataclass(frozen=True)
class TextRequest:
    """A validated request: (query, passage) pairs, options, whether it is the rerank shape, and
    whether the caller asks for the ranking (a top_n, or the indices output)."""

    pairs: list[tuple[str, str]]
    options: ScoreOptions
    rerank: bool
    wants_indices: bool = False


def decode_texts(tensor: np.ndarray, name: str, max_text_bytes: int) -> list[str]:
    """UTF-8 BYTES tensor -> non-empty strings; InputError naming the element otherwise."""
    if tensor.dtype != np.object_ and tensor.dtype.kind not in ("S", "U"):
        raise InputError(f"{name} must be a BYTES (UTF-8 string) tensor, not {tensor.dtype}")
    if tensor.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {list(tensor.shape)}")
    return [
        text_from_utf8(item, f"{name}[{i}]", max_text_bytes)
        if isinstance(item, bytes)
        else check_text(item, f"{name}[{i}]", max_text_bytes)
        for i, item in enumerate(tensor.tolist())
    ]


def parse_text_request(
    query: np.ndarray | None,
    queries: np.ndarray | None,
    passages: np.ndarray | None,
    params: Any,
    manifest: ModelManifest,
    *,
    max_pairs: int,
    max_text_bytes: int,
    requested_outputs: Sequence[str] = (),
) -> TextRequest:
    """Check one request's tensors and parameters against the model; InputError on any problem."""
    if not isinstance(params, dict):
        raise InputError("request parameters must be a JSON object")
    if passages is None:
        raise InputError(f"the {PASSAGES} input is required (BYTES [n])")
    if (query is None) == (queries is None):
        raise InputError(
            f"give exactly one of {QUERY} (BYTES [1], rerank) or {QUERIES} (BYTES [n], one per passage)"
        )
    passage_texts = decode_texts(passages, PASSAGES, max_text_bytes)
    if not passage_texts:
        raise InputError(f"{PASSAGES} is empty: give at least one passage")
    if len(passage_texts) > max_pairs:
        raise InputError(f"{len(passage_texts)} passages in one request; the limit is {max_pairs}")
    if query is not None:
        query_texts = decode_texts(query.reshape(-1) if query.ndim > 1 else query, QUERY, max_text_bytes)
        if len(query_texts) != 1:
            raise InputError(f"{QUERY} must hold exactly one text, got {len(query_texts)}")
        query_texts = query_texts * len(passage_texts)
    else:
        query_texts = decode_texts(queries, QUERIES, max_text_bytes)
        if len(query_texts) != len(passage_texts):
            raise InputError(
                f"{QUERIES} has {len(query_texts)} texts but {PASSAGES} has "
                f"{len(passage_texts)}; give one query per passage"
            )
    options = parse_options(params, manifest, from_text=True)
    if options.top_n is not None and query is None:
        raise InputError(f"top_n applies to the rerank shape ({QUERY} + {PASSAGES}) only")
    rerank = query is not None
    wants_indices = rerank and (options.top_n is not None or INDICES in requested_outputs)
    return TextRequest(list(zip(query_texts, passage_texts)), options, rerank, wants_indices)
