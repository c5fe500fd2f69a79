"""FlagReranker's input for XLM-RoBERTa rerankers: `<s> q </s></s> p </s>`, truncated only_second."""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer

from reranker_core.encoding.base import EncodedPair, token_ids, truncate_only_second
from reranker_core.manifest import ModelManifest

PAIR_SPECIAL_TOKENS = 4  # cls, sep, sep, sep


def encode_encoder_pairs(
    tokenizer: Tokenizer,
    manifest: ModelManifest,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int,
    query_max_length: int,
) -> list[EncodedPair]:
    """Token ids identical to FlagReranker.compute_score's for each (query, passage)."""
    cls_id = manifest.tokenizer.cls_token_id
    sep_id = manifest.tokenizer.sep_token_id
    if cls_id is None or sep_id is None:
        raise ValueError("the model's tokenizer has no cls/sep tokens; re-export the model")
    queries = token_ids(tokenizer, [q for q, _ in pairs], query_max_length)
    passages = token_ids(tokenizer, [p for _, p in pairs], max_length)
    out = []
    for q, p in zip(queries, passages):
        overflow = len(q) + len(p) + PAIR_SPECIAL_TOKENS - max_length
        p = truncate_only_second(q, p, overflow)
        out.append(EncodedPair(tuple([cls_id, *q, sep_id, sep_id, *p, sep_id])))
    return out


def encoder_passage_budgets(
    tokenizer: Tokenizer, queries: Sequence[str], *, max_length: int, query_max_length: int
) -> list[int]:
    """Passage tokens that fit next to each (truncated) query before only_second truncation cuts."""
    return [
        max_length - PAIR_SPECIAL_TOKENS - len(q) for q in token_ids(tokenizer, queries, query_max_length)
    ]
