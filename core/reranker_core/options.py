"""Per-call scoring options, validated once at each boundary (client keyword arguments, Triton
request parameters, rerank API fields) into one frozen ScoreOptions that the rest trusts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reranker_core.errors import InputError
from reranker_core.families import COMPRESS_LAYERS, COMPRESS_RATIO, CUTOFF_LAYERS, PROMPT, family_spec
from reranker_core.layers import LayerLimits, resolve_layers
from reranker_core.limits import default_query_max_length
from reranker_core.manifest import ModelManifest

TRUNCATE = "truncate"
MAX_WINDOW = "max_window"
LONG_PASSAGE_POLICIES = (TRUNCATE, MAX_WINDOW)

NORMALIZE = "normalize"
MAX_LENGTH = "max_length"
QUERY_MAX_LENGTH = "query_max_length"
TOP_N = "top_n"
LONG_PASSAGES = "long_passages"
WINDOW_STRIDE = "window_stride"
TRUNCATE_OPTION = "truncate"  # false: an input longer than max_length is an error, not truncated
COMMON_OPTIONS = frozenset(
    {NORMALIZE, MAX_LENGTH, QUERY_MAX_LENGTH, TOP_N, LONG_PASSAGES, WINDOW_STRIDE, TRUNCATE_OPTION}
)
# Options the token model reads from request parameters (everything else is applied around it).
TOKEN_MODEL_OPTIONS = (CUTOFF_LAYERS, COMPRESS_RATIO, COMPRESS_LAYERS)
# Request parameters Triton itself reserves; never treated as options.
TRITON_RESERVED = frozenset(
    {"sequence_id", "priority", "timeout", "sequence_start", "sequence_end", "headers", "binary_data_output"}
)


@dataclass(frozen=True)
class ScoreOptions:
    """Validated options of one scoring call; layer and ratio values are checked against the
    model by the token model, which knows the checkpoint."""

    max_length: int
    query_max_length: int
    normalize: bool = False
    prompt: str | None = None
    cutoff_layers: tuple[int, ...] | None = None
    compress_ratio: int | None = None
    compress_layers: tuple[int, ...] | None = None
    long_passages: str = TRUNCATE
    window_stride: int | None = None
    top_n: int | None = None
    truncate: bool = True

    def text_parameters(self) -> dict[str, Any]:
        """Request parameters for a text model scoring with these options (scores left raw: the
        caller applies `normalize`, and ranks)."""
        params: dict[str, Any] = {MAX_LENGTH: self.max_length, QUERY_MAX_LENGTH: self.query_max_length}
        if self.prompt is not None:
            params[PROMPT] = self.prompt
        if self.long_passages != TRUNCATE:
            params[LONG_PASSAGES] = self.long_passages
        if self.window_stride is not None:
            params[WINDOW_STRIDE] = self.window_stride
        if not self.truncate:
            params[TRUNCATE_OPTION] = False
        return {**params, **self.token_parameters()}

    def token_parameters(self) -> dict[str, Any]:
        """Request parameters for the token model, as Triton carries them (lists as JSON)."""
        params: dict[str, Any] = {}
        for name in TOKEN_MODEL_OPTIONS:
            value = getattr(self, name)
            if value is not None:
                params[name] = json.dumps(list(value)) if isinstance(value, tuple) else value
        return params


def parse_options(
    raw: Mapping[str, Any], manifest: ModelManifest, *, from_text: bool = False
) -> ScoreOptions:
    """Check `raw` (keyword arguments, or Triton request parameters when `from_text`: numbers and
    lists may then arrive as strings) against the model's family; InputError names the problem."""
    spec = family_spec(manifest.family)
    values = {k: v for k, v in raw.items() if v is not None and not (from_text and _reserved(k))}
    allowed = COMMON_OPTIONS | spec.options
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise InputError(
            f"unknown option(s) {', '.join(unknown)}: {manifest.family} models accept "
            f"{', '.join(sorted(allowed))}"
        )
    max_length = _positive(values.get(MAX_LENGTH), MAX_LENGTH, from_text) or manifest.default_max_length
    query_max_length = _positive(
        values.get(QUERY_MAX_LENGTH), QUERY_MAX_LENGTH, from_text
    ) or default_query_max_length(max_length)
    if query_max_length < 1:
        raise InputError(
            f"max_length {max_length} leaves no room for the query "
            f"(query_max_length = max_length * 3 // 4 = 0); give query_max_length"
        )
    policy = values.get(LONG_PASSAGES, TRUNCATE)
    if policy not in LONG_PASSAGE_POLICIES:
        raise InputError(f"long_passages must be one of {', '.join(LONG_PASSAGE_POLICIES)}, not {policy!r}")
    prompt = values.get(PROMPT)
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"prompt must be a string, not {type(prompt).__name__}")
    options = ScoreOptions(
        max_length=max_length,
        query_max_length=query_max_length,
        normalize=_bool(values.get(NORMALIZE, False), NORMALIZE),
        prompt=prompt,
        cutoff_layers=_int_tuple(values.get(CUTOFF_LAYERS), CUTOFF_LAYERS, from_text),
        compress_ratio=_positive(values.get(COMPRESS_RATIO), COMPRESS_RATIO, from_text),
        compress_layers=_int_tuple(values.get(COMPRESS_LAYERS), COMPRESS_LAYERS, from_text),
        long_passages=policy,
        window_stride=_positive(values.get(WINDOW_STRIDE), WINDOW_STRIDE, from_text),
        top_n=_positive(values.get(TOP_N), TOP_N, from_text),
        truncate=_bool(values.get(TRUNCATE_OPTION, True), TRUNCATE_OPTION),
    )
    if options.cutoff_layers == ():
        raise InputError("cutoff_layers is empty: give a layer or a non-empty list of layers")
    if manifest.llm is not None and any(getattr(options, name) is not None for name in TOKEN_MODEL_OPTIONS):
        resolve_layers(
            options.cutoff_layers,
            options.compress_ratio,
            options.compress_layers,
            LayerLimits.from_manifest(manifest),
        )
    return options


def _reserved(key: str) -> bool:
    return key in TRITON_RESERVED or key.startswith("triton_")


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise InputError(f"{name} must be true or false, not {value!r}")


def parse_int(value: Any, name: str) -> int:
    """An integer given as a number or as text (Triton request parameters)."""
    return _int(value, name, True)


def parse_int_list(value: Any, name: str) -> list[int]:
    """An int, a list of ints, or text holding either ("8", "[8, 16]", "8,16"); may be empty."""
    return list(_int_tuple(value, name, True) or ())


def _int(value: Any, name: str, from_text: bool) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if from_text and isinstance(value, float) and value.is_integer():
        return int(value)
    if from_text and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InputError(f"{name} must be an integer, not {value!r}")


def _positive(value: Any, name: str, from_text: bool) -> int | None:
    if value is None:
        return None
    try:
        number = _int(value, name, from_text)
    except InputError:
        number = 0
    if number < 1:
        raise InputError(f"{name} must be a positive integer, not {value!r}")
    return number


def _int_tuple(value: Any, name: str, from_text: bool) -> tuple[int, ...] | None:
    """An int or a list of ints; from text also "[8, 16]" or "8,16". An empty list stays empty
    (resolve_layers names what is allowed)."""
    if value is None:
        return None
    if from_text and isinstance(value, str):
        text = value.strip()
        try:
            value = json.loads(text) if text else []
        except ValueError:
            value = [part for part in text.strip("[]").split(",") if part.strip()]
    items = value if isinstance(value, (list, tuple)) else [value]
    return tuple(
        _int(v, f"every entry of {name}" if isinstance(value, (list, tuple)) else name, from_text)
        for v in items
    )
