"""Validation of what callers pass to compute_score / rerank, before anything is sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reranker_core.errors import InputError
from reranker_core.limits import MAX_PAIRS_PER_CALL, MAX_TEXT_BYTES


def normalize_pairs(
    pairs: Any, *, max_text_bytes: int = MAX_TEXT_BYTES, max_pairs: int = MAX_PAIRS_PER_CALL
) -> list[tuple[str, str]]:
    """A single [query, passage] or a list of them -> list of (query, passage) tuples."""
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InputError("pairs must be a [query, passage] pair or a list of such pairs")
    if len(pairs) == 0:
        raise InputError("pairs is empty: give at least one [query, passage] pair")
    if len(pairs) == 2 and all(isinstance(x, str) for x in pairs):
        pairs = [pairs]
    if len(pairs) > max_pairs:
        raise InputError(f"{len(pairs)} pairs in one call; the limit is {max_pairs}")
    out = []
    for i, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise InputError(f"pair {i} must be a [query, passage] sequence of two strings")
        for role, text in zip(("query", "passage"), pair):
            check_text(text, f"pair {i} {role}", max_text_bytes)
        out.append((pair[0], pair[1]))
    return out


def check_text(text: Any, what: str, max_text_bytes: int = MAX_TEXT_BYTES) -> str:
    """`text` when it is a non-empty str of at most `max_text_bytes` UTF-8 bytes; InputError
    naming `what` otherwise. ASCII text is measured without encoding it."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be a str, not {type(text).__name__}")
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InputError(f"{what} is not valid Unicode text (lone surrogate at {exc.start})") from None
    _check_size(size, what, max_text_bytes)
    if not text.strip():
        raise InputError(f"{what} is empty")
    return text


def text_from_utf8(data: bytes, what: str, max_text_bytes: int = MAX_TEXT_BYTES) -> str:
    """UTF-8 `data` decoded once (its size is its length) into a non-empty str; InputError naming
    `what` otherwise."""
    _check_size(len(data), what, max_text_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    if not text.strip():
        raise InputError(f"{what} is empty")
    return text


def _check_size(size: int, what: str, max_text_bytes: int) -> None:
    if size > max_text_bytes:
        raise InputError(f"{what} is {size} bytes; the limit is {max_text_bytes} bytes (max_text_bytes)")


def positive_int(value: Any, name: str, *, maximum: int | None = None, allow_none: bool = True) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    if maximum is not None and value > maximum:
        raise InputError(f"{name}={value} exceeds the model's maximum of {maximum}")
    return value
