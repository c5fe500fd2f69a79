"""What every family's encoder produces, and tokenizer helpers shared by the families."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tokenizers import Tokenizer


@dataclass(frozen=True)
class EncodedPair:
    """Token ids for one (query, passage) pair, exactly as FlagEmbedding feeds its model.

    `query_length` / `prompt_length` are set only by families that need them on the server
    (the lightweight model compresses the passage segment between them)."""

    input_ids: tuple[int, ...]
    query_length: int = 0
    prompt_length: int = 0


def token_ids(tokenizer: Tokenizer, texts: Sequence[str], max_length: int | None = None) -> list[list[int]]:
    """Tokenize without special tokens, keeping the first `max_length` ids (HF truncation=True)."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    ids = [list(e.ids) for e in encodings]
    if max_length is not None:
        ids = [x[:max_length] for x in ids]
    return ids


def truncate_only_second(first: list[int], second: list[int], overflow: int) -> list[int]:
    """HF `truncation='only_second'`: drop `overflow` ids from the end of the second sequence.
    When the overflow is not smaller than the second sequence nothing is cut (HF logs an error)."""
    if overflow <= 0 or overflow >= len(second):
        return second
    return second[: len(second) - overflow]
