"""Pack encoded pairs into server-sized requests: length-sorted, right-padded, bounded in
pairs and padded tokens, so few tokens are wasted and requests merge well on the server."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from reranker_client.encoding.base import EncodedPair

DEFAULT_MAX_REQUEST_TOKENS = 16384


@dataclass
class RequestBatch:
    indices: np.ndarray                 # positions of these pairs in the caller's list
    input_ids: np.ndarray               # [n, L] int64, right-padded
    attention_mask: np.ndarray          # [n, L] int64
    segment_lengths: Optional[np.ndarray] = None  # [n, 2] int64 (query_length, prompt_length)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def plan_requests(encoded: Sequence[EncodedPair], *, max_pairs: int, pad_id: int,
                  max_tokens: int = DEFAULT_MAX_REQUEST_TOKENS, with_segments: bool = False) -> list[RequestBatch]:
    """Split `encoded` into requests of at most `max_pairs` pairs and `max_tokens` padded tokens."""
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i].input_ids))
    groups: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = len(encoded[current[0]].input_ids) if current else len(encoded[i].input_ids)
        if current and (len(current) >= max_pairs or (len(current) + 1) * width > max_tokens):
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return [_pack(encoded, g, pad_id, with_segments) for g in groups]


def _pack(encoded: Sequence[EncodedPair], group: list[int], pad_id: int, with_segments: bool) -> RequestBatch:
    width = max(len(encoded[i].input_ids) for i in group)
    ids = np.full((len(group), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(group), width), dtype=np.int64)
    for row, i in enumerate(group):
        seq = encoded[i].input_ids
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    segments = None
    if with_segments:
        segments = np.array([[encoded[i].query_length, encoded[i].prompt_length] for i in group],
                            dtype=np.int64)
    return RequestBatch(np.array(group, dtype=np.int64), ids, mask, segments)
