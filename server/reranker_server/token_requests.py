"""Validation of the token tensors a token model receives. Pure numpy: shared by the
Python-backend models and unit-tested without a server."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reranker_core.errors import InputError


@dataclass(frozen=True)
class TokenRows:
    """One request's sequences, with padding stripped: rows[i] = ids of pair i."""

    rows: list[np.ndarray]

    @property
    def lengths(self) -> list[int]:
        return [len(r) for r in self.rows]


def validate_token_inputs(
    input_ids: np.ndarray | None,
    attention_mask: np.ndarray | None,
    *,
    vocab_size: int,
    max_positions: int,
    max_pairs: int,
) -> TokenRows:
    """Check one request's tensors; return its unpadded rows or raise InputError.

    Rows may be left- or right-padded (the ones of each mask row must be contiguous);
    `max_positions` 0 means no length limit."""
    if input_ids is None or attention_mask is None:
        raise InputError("both input_ids and attention_mask are required")
    if input_ids.ndim != 2 or attention_mask.ndim != 2:
        raise InputError(
            f"input_ids and attention_mask must be 2-D [pairs, tokens]; got shapes "
            f"{list(input_ids.shape)} and {list(attention_mask.shape)}"
        )
    if input_ids.shape != attention_mask.shape:
        raise InputError(
            f"input_ids shape {list(input_ids.shape)} does not match attention_mask "
            f"shape {list(attention_mask.shape)}"
        )
    if not (np.issubdtype(input_ids.dtype, np.integer) and np.issubdtype(attention_mask.dtype, np.integer)):
        raise InputError("input_ids and attention_mask must be integer tensors (INT64)")
    pairs, width = input_ids.shape
    if pairs == 0 or width == 0:
        raise InputError("empty request: at least one pair with at least one token is required")
    if pairs > max_pairs:
        raise InputError(f"{pairs} pairs in one request; the limit is {max_pairs}")
    if not np.isin(attention_mask, (0, 1)).all():
        raise InputError("attention_mask must contain only 0 and 1")
    mask = attention_mask.astype(bool)
    lengths = mask.sum(axis=1)
    if (lengths == 0).any():
        raise InputError(f"pair {int(np.argmin(lengths))} has no tokens (attention_mask all zero)")
    first = mask.argmax(axis=1)
    last = width - 1 - mask[:, ::-1].argmax(axis=1)
    if (last - first + 1 != lengths).any():
        bad = int(np.argmax(last - first + 1 != lengths))
        raise InputError(f"pair {bad}: attention_mask ones must be contiguous (left or right padding only)")
    if max_positions and int(lengths.max()) > max_positions:
        raise InputError(
            f"a sequence of {int(lengths.max())} tokens exceeds the model's maximum of "
            f"{max_positions}; truncate with max_length <= {max_positions}"
        )
    real = input_ids[mask]
    if int(real.min()) < 0 or int(real.max()) >= vocab_size:
        raise InputError(f"token id out of range: ids must be in [0, {vocab_size - 1}]")
    return TokenRows([input_ids[i, first[i] : last[i] + 1].astype(np.int64) for i in range(pairs)])
