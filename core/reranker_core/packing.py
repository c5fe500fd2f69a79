"""Request packing, one implementation for the client, the text model and the token runners:
length-sorted groups bounded in rows and padded tokens, right-padded into int64 matrices."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reranker_core.encoding.base import EncodedPair
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, LENGTH_BUCKETS


@dataclass
class RequestBatch:
    """One token-model request: rows of the caller's pairs, padded to a common width."""

    indices: np.ndarray  # positions of these pairs in the caller's list
    input_ids: np.ndarray  # [n, L] int64, right-padded
    attention_mask: np.ndarray  # [n, L] int64
    segment_lengths: np.ndarray | None = None  # [n, 2] int64 (query_length, prompt_length)

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())


def plan_chunks(lengths: Sequence[int], max_tokens: int, max_rows: int = 0) -> list[list[int]]:
    """Group row indices, longest first, into chunks whose padded size (rows x longest row) stays
    within `max_tokens` (a single over-long row still forms its own chunk) and, when `max_rows` > 0,
    that hold at most `max_rows` rows."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    chunks: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * width > max_tokens or (max_rows and len(current) >= max_rows)):
            chunks.append(current)
            current = []
        current.append(i)
    if current:
        chunks.append(current)
    return chunks


def pad_rows(
    rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad rows into (input_ids, attention_mask) int64 matrices of `width` columns
    (default: the longest row)."""
    width = max(len(r) for r in rows) if width is None else width
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def bucket_width(length: int, limit: int = 0) -> int:
    """The smallest length bucket holding `length` tokens (capped at `limit` when > 0; lengths past
    the largest bucket keep their own width)."""
    i = bisect.bisect_left(LENGTH_BUCKETS, length)
    width = LENGTH_BUCKETS[i] if i < len(LENGTH_BUCKETS) else length
    return min(width, limit) if limit and length <= limit else width


def plan_requests(
    encoded: Sequence[EncodedPair],
    *,
    max_pairs: int,
    pad_id: int,
    max_tokens: int = CLIENT_MAX_REQUEST_TOKENS,
    with_segments: bool = False,
    buckets: bool = False,
    max_positions: int = 0,
) -> list[RequestBatch]:
    """Split `encoded` into requests of at most `max_pairs` pairs and `max_tokens` padded tokens.

    With `buckets`, rows of one request share a length bucket and are padded to its width (capped
    at `max_positions`), so equal-shaped requests from many callers can be batched together."""
    lengths = [len(e.input_ids) for e in encoded]
    if not buckets:
        groups = plan_chunks(lengths, max_tokens, max_pairs)
        return [_pack(encoded, g, pad_id, with_segments) for g in groups]
    by_bucket: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        by_bucket.setdefault(bucket_width(n, max_positions), []).append(i)
    batches = []
    for width in sorted(by_bucket, reverse=True):
        members = by_bucket[width]
        rows = max(1, min(max_pairs, max_tokens // width))
        for start in range(0, len(members), rows):
            batches.append(_pack(encoded, members[start : start + rows], pad_id, with_segments, width))
    return batches


def _pack(
    encoded: Sequence[EncodedPair],
    group: list[int],
    pad_id: int,
    with_segments: bool,
    width: int | None = None,
) -> RequestBatch:
    ids, mask = pad_rows([encoded[i].input_ids for i in group], pad_id, width)
    segments = None
    if with_segments:
        segments = np.array(
            [[encoded[i].query_length, encoded[i].prompt_length] for i in group], dtype=np.int64
        )
    return RequestBatch(np.array(group, dtype=np.int64), ids, mask, segments)
