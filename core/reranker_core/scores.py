"""What is done to a model's raw scores before a caller sees them: the sigmoid of normalize=True
and the ranking, best first. No tokenizer here: the rerank API imports it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def normalized(scores: np.ndarray, normalize: bool) -> np.ndarray:
    """Raw logits, or their sigmoid 1 / (1 + e^-x) (FlagEmbedding's normalize=True)."""
    return 1.0 / (1.0 + np.exp(-scores)) if normalize else scores


def ranking(
    scores: Sequence[float] | np.ndarray, top_n: int | None = None, *, ties_high_index_first: bool = False
) -> list[int]:
    """Indices by score, best first, the first `top_n` when given. Equal scores keep input order,
    or the reverse with `ties_high_index_first` (as TEI orders them)."""
    values = np.asarray(scores, dtype=np.float64)
    index = np.arange(len(values))
    order = np.lexsort((-index if ties_high_index_first else index, -values)).tolist()
    return order if top_n is None else order[:top_n]
