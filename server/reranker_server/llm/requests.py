"""Validation of one LLM-reranker request (tensors and per-request parameters) and the settings
the served model reads from the manifest. Pure numpy / Python: unit-tested without Triton.

Per-request parameters (`json.loads(request.parameters())`), all optional:
  cutoff_layers    int, or a string: "28", "[24, 28]" or "24,28"; or a list of ints
  compress_ratio   int or string, one of the manifest's compress_ratios (lightweight: 1, 2, 4, 8)
  compress_layers  int, list, or string like cutoff_layers (lightweight only)
Other keys are ignored (Triton reserves some for itself).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from reranker_server.llm.decoder import describe_layers
from reranker_server.token_batches import RequestError, validate_token_inputs


@dataclass(frozen=True)
class ServingLimits:
    """What requests are checked against (from the manifest, the model config and the checkpoint)."""
    family: str
    vocab_size: int
    max_positions: int                 # longest row accepted; 0 = no limit
    max_pairs: int                     # rows per request
    num_hidden_layers: int
    allowed_cutoffs: tuple[int, ...]
    default_cutoffs: tuple[int, ...]
    compress_ratios: tuple[int, ...] = (1,)
    default_compress_ratio: int = 1
    default_compress_layers: tuple[int, ...] = ()

    @property
    def compresses(self) -> bool:
        return any(r != 1 for r in self.compress_ratios)


@dataclass(frozen=True)
class ScoreSettings:
    """The parameters one group of requests is scored with (hashable: requests with equal
    settings run together)."""
    cutoff_layers: tuple[int, ...]
    compress_ratio: int = 1
    compress_layers: tuple[int, ...] = ()


@dataclass
class ParsedRequest:
    rows: list[np.ndarray]                        # unpadded ids per pair
    segments: Optional[np.ndarray]                # [n, 2] (query_len, prompt_len) or None
    settings: ScoreSettings


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise RequestError(f"{what} must be an integer, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise RequestError(f"{what} must be an integer, not {value!r}")


def parse_int_list(value: Any, what: str) -> list[int]:
    """An int, a list of ints, or a string holding either (JSON or comma-separated)."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text else []
        except ValueError:
            value = [part for part in text.strip("[]").split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [_int(v, f"every entry of {what}") for v in value]
    return [_int(value, what)]


def parse_settings(params: dict[str, Any], limits: ServingLimits) -> ScoreSettings:
    """Cutoffs (sorted, unique, allowed), compress ratio and layers for one request."""
    allowed = describe_layers(limits.allowed_cutoffs)
    if params.get("cutoff_layers") is None:
        cutoffs = sorted(set(limits.default_cutoffs))
    else:
        cutoffs = sorted(set(parse_int_list(params["cutoff_layers"], "cutoff_layers")))
        if not cutoffs:
            raise RequestError(f"cutoff_layers is empty; allowed layers: {allowed}")
        bad = [c for c in cutoffs if c not in limits.allowed_cutoffs]
        if bad:
            raise RequestError(f"cutoff layer(s) {bad} not available for this {limits.family} model; "
                               f"allowed layers: {allowed}")
    ratio = limits.default_compress_ratio
    if params.get("compress_ratio") is not None:
        ratio = _int(params["compress_ratio"], "compress_ratio")
    if ratio not in limits.compress_ratios:
        ratios = ", ".join(map(str, limits.compress_ratios))
        raise RequestError(f"compress_ratio {ratio} not supported by this {limits.family} model; "
                           f"allowed: {ratios}")
    layers: list[int] = []
    if params.get("compress_layers") is not None:
        if not limits.compresses:
            raise RequestError(f"compress_layers is not supported by this {limits.family} model")
        layers = parse_int_list(params["compress_layers"], "compress_layers")
        bad = [c for c in layers if not 0 <= c <= limits.num_hidden_layers]
        if bad:
            raise RequestError(f"compress layer(s) {bad} out of range; allowed layers: "
                               f"0..{limits.num_hidden_layers}")
    elif ratio != 1:
        layers = list(limits.default_compress_layers)
    if ratio == 1:
        layers = []
    # only layers strictly between 0 and the deepest cutoff change anything
    effective = tuple(sorted({c for c in layers if 0 < c < cutoffs[-1]}))
    return ScoreSettings(tuple(cutoffs), ratio if effective else 1, effective)


def validate_rows(input_ids: Optional[np.ndarray], attention_mask: Optional[np.ndarray],
                  limits: ServingLimits) -> list[np.ndarray]:
    """One request's token tensors -> unpadded rows (left or right padding accepted)."""
    return validate_token_inputs(input_ids, attention_mask, vocab_size=limits.vocab_size,
                                 max_positions=limits.max_positions, max_pairs=limits.max_pairs).rows


def validate_segments(segments: Optional[np.ndarray], rows: Sequence[np.ndarray], needed: bool) -> Optional[np.ndarray]:
    """segment_lengths [n, 2] = (query_len, prompt_len) per pair; required when compressing."""
    if segments is None:
        if needed:
            raise RequestError("segment_lengths [pairs, 2] (query length, prompt length) is required "
                               "when compress_ratio is not 1")
        return None
    if not np.issubdtype(segments.dtype, np.integer):
        raise RequestError("segment_lengths must be an integer tensor (INT64)")
    if segments.shape != (len(rows), 2):
        raise RequestError(f"segment_lengths must have shape [{len(rows)}, 2] (one (query length, prompt "
                           f"length) per pair); got {list(segments.shape)}")
    lengths = np.array([len(r) for r in rows])
    if (segments < 0).any() or (segments.sum(axis=1) > lengths).any():
        raise RequestError("segment_lengths: query length + prompt length must be >= 0 and at most the "
                           "pair's token count")
    return segments.astype(np.int64)
