"""Validation of one LLM-reranker request: token tensors and per-request parameters.
Unit-tested without Triton.

Per-request parameters (`json.loads(request.parameters())`), all optional:
  cutoff_layers    int, or a string: "28", "[24, 28]" or "24,28"; or a list of ints
  compress_ratio   int or string, one of the manifest's compress_ratios (lightweight: 1, 2, 4, 8)
  compress_layers  int, list, or string like cutoff_layers (lightweight only)
Other keys are ignored (Triton reserves some for itself; the text model sends only these).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reranker_core.errors import InputError
from reranker_core.families import COMPRESS_LAYERS, COMPRESS_RATIO, CUTOFF_LAYERS
from reranker_core.layers import LayerLimits, LayerSettings, resolve_layers
from reranker_core.options import parse_int, parse_int_list
from reranker_server.token_requests import validate_token_inputs


@dataclass(frozen=True)
class ServingLimits:
    """What requests are checked against (from the manifest, the model config and the checkpoint)."""

    layers: LayerLimits
    vocab_size: int
    max_positions: int  # longest row accepted; 0 = no limit
    max_pairs: int  # rows per request


@dataclass
class ParsedRequest:
    rows: list[np.ndarray]  # unpadded ids per pair
    segments: np.ndarray | None  # [n, 2] (query_len, prompt_len) or None
    settings: LayerSettings


def parse_settings(params: dict[str, Any], limits: ServingLimits) -> LayerSettings:
    """Cutoffs (sorted, unique, allowed), compress ratio and layers for one request."""

    def ints(name: str) -> list[int] | None:
        return None if params.get(name) is None else parse_int_list(params[name], name)

    ratio = None if params.get(COMPRESS_RATIO) is None else parse_int(params[COMPRESS_RATIO], COMPRESS_RATIO)
    return resolve_layers(ints(CUTOFF_LAYERS), ratio, ints(COMPRESS_LAYERS), limits.layers)


def validate_rows(
    input_ids: np.ndarray | None, attention_mask: np.ndarray | None, limits: ServingLimits
) -> list[np.ndarray]:
    """One request's token tensors -> unpadded rows (left or right padding accepted)."""
    return validate_token_inputs(
        input_ids,
        attention_mask,
        vocab_size=limits.vocab_size,
        max_positions=limits.max_positions,
        max_pairs=limits.max_pairs,
    ).rows


def validate_segments(
    segments: np.ndarray | None, rows: Sequence[np.ndarray], needed: bool
) -> np.ndarray | None:
    """segment_lengths [n, 2] = (query_len, prompt_len) per pair; required when compressing."""
    if segments is None:
        if needed:
            raise InputError(
                "segment_lengths [pairs, 2] (query length, prompt length) is required "
                "when compress_ratio is not 1"
            )
        return None
    if not np.issubdtype(segments.dtype, np.integer):
        raise InputError("segment_lengths must be an integer tensor (INT64)")
    if segments.shape != (len(rows), 2):
        raise InputError(
            f"segment_lengths must have shape [{len(rows)}, 2] (one (query length, prompt "
            f"length) per pair); got {list(segments.shape)}"
        )
    lengths = np.array([len(r) for r in rows])
    if (segments < 0).any() or (segments.sum(axis=1) > lengths).any():
        raise InputError(
            "segment_lengths: query length + prompt length must be >= 0 and at most the pair's token count"
        )
    return segments.astype(np.int64)
