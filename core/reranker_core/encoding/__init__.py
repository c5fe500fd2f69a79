"""Token ids per model family, identical to FlagEmbedding's (see each module)."""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Tokenizer

from reranker_core.encoding.base import EncodedPair
from reranker_core.encoding.decoder import DecoderEncoder, encode_decoder_pairs
from reranker_core.encoding.encoder import encode_encoder_pairs, encoder_passage_budgets
from reranker_core.families import ENCODER
from reranker_core.manifest import ModelManifest


def encode_pairs(
    tokenizer: Tokenizer,
    manifest: ModelManifest,
    pairs: Sequence[tuple[str, str]],
    *,
    max_length: int,
    query_max_length: int,
    prompt: str | None = None,
) -> list[EncodedPair]:
    """Encode (query, passage) pairs for the model described by `manifest`."""
    if manifest.family == ENCODER:
        return encode_encoder_pairs(
            tokenizer, manifest, pairs, max_length=max_length, query_max_length=query_max_length
        )
    return encode_decoder_pairs(
        tokenizer, manifest, pairs, max_length=max_length, query_max_length=query_max_length, prompt=prompt
    )


def passage_budgets(
    tokenizer: Tokenizer,
    manifest: ModelManifest,
    queries: Sequence[str],
    *,
    max_length: int,
    query_max_length: int,
    prompt: str | None = None,
) -> list[int]:
    """Tokens of each passage that survive truncation next to its query (for max_window)."""
    if manifest.family == ENCODER:
        return encoder_passage_budgets(
            tokenizer, queries, max_length=max_length, query_max_length=query_max_length
        )
    return DecoderEncoder.from_manifest(tokenizer, manifest).passage_budgets(
        queries, max_length=max_length, query_max_length=query_max_length, prompt=prompt
    )


__all__ = ["EncodedPair", "encode_pairs", "passage_budgets"]
