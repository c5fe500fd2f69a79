"""How closely a reduced-precision variant (bf16, fp16, int8) ranks like fp32.

Scores of one set of queries, each with its candidate passages, from the fp32 reference and from
the variant. Measured on a model whose scores mean something (export/tiny/trained.py): on random
weights every score sits within rounding noise of the others and any rounding reorders them.

- spread: the standard deviation of the reference scores over all pairs;
- max_rel_diff: max |variant - reference| / spread;
- separated_swaps: pairs of one query whose reference scores differ by more than
  `margin` x spread and whose order the variant reverses;
- top_k_agreement: the fewest of a query's reference top k that the variant also ranks top k;
- kendall_tau: over all pairs of one query, averaged over queries (near-ties move it; reported,
  not a criterion).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

SEPARATION_MARGIN = 0.05  # of the spread: pairs further apart than this must keep their order
MAX_REL_DIFF = 0.05  # of the spread
TOP_K = 10
MIN_TOP_K_AGREEMENT = 9


@dataclass(frozen=True)
class Agreement:
    """A variant's scores against the fp32 reference (see the module docstring)."""

    pairs: int
    spread: float
    max_abs_diff: float
    max_rel_diff: float
    separated_pairs: int
    separated_swaps: int
    top_k: int
    top_k_agreement: int
    kendall_tau: float
    margin: float = SEPARATION_MARGIN

    def meets_targets(self) -> bool:
        """No separated swap, max |d| <= 5% of the spread, top-10 agreement >= 9/10."""
        return (
            self.separated_swaps == 0
            and self.max_rel_diff <= MAX_REL_DIFF
            and self.top_k_agreement >= min(MIN_TOP_K_AGREEMENT, self.top_k)
        )

    def summary(self) -> str:
        """One line: the figures a benchmark table reports."""
        return (
            f"max|d| {100 * self.max_rel_diff:.1f}% of spread {self.spread:.2f}, "
            f"separated swaps {self.separated_swaps}/{self.separated_pairs} "
            f"(> {100 * self.margin:.0f}% apart), top-{self.top_k} {self.top_k_agreement}/{self.top_k}, "
            f"Kendall tau {self.kendall_tau:.3f} over {self.pairs} pairs"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    i, j = np.triu_indices(len(a), 1)
    return float(np.mean(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]))) if len(i) else 1.0


def _top(scores: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-scores, kind="stable")[:k].tolist())


def agreement(
    reference: Sequence[float],
    variant: Sequence[float],
    groups: Sequence[int],
    *,
    margin: float = SEPARATION_MARGIN,
    top_k: int = TOP_K,
) -> Agreement:
    """Compare `variant` scores to `reference` (same pairs, same order); `groups[i]` is the query
    of pair i (rankings are compared within a query)."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(variant, dtype=np.float64)
    group_ids = np.asarray(groups)
    if not (ref.shape == got.shape == group_ids.shape) or ref.ndim != 1:
        raise ValueError(
            f"reference {ref.shape}, variant {got.shape} and groups {group_ids.shape} must match"
        )
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(got))):
        raise ValueError("scores must be finite")
    spread = float(ref.std())
    if spread == 0.0:
        raise ValueError("the reference scores are all equal: no ranking to compare")
    diff = np.abs(got - ref)
    separated = swaps = 0
    taus, tops = [], []
    k = top_k
    for g in np.unique(group_ids):
        idx = np.flatnonzero(group_ids == g)
        r, v = ref[idx], got[idx]
        i, j = np.triu_indices(len(idx), 1)
        apart = np.abs(r[i] - r[j]) > margin * spread
        separated += int(apart.sum())
        swaps += int((np.sign(r[i] - r[j]) != np.sign(v[i] - v[j]))[apart].sum())
        taus.append(_kendall_tau(r, v))
        k = min(top_k, len(idx))
        tops.append(len(_top(r, k) & _top(v, k)))
    return Agreement(
        pairs=len(ref),
        spread=spread,
        max_abs_diff=float(diff.max()),
        max_rel_diff=float(diff.max() / spread),
        separated_pairs=separated,
        separated_swaps=swaps,
        top_k=k,
        top_k_agreement=int(min(tops)),
        kendall_tau=float(np.mean(taus)),
        margin=margin,
    )
