"""Ranking metrics from ir-measures (trec_eval's definitions, computed by pytrec_eval), and the
rank agreement of two configurations (Kendall's tau-b from scipy).

ir-measures was chosen over pytrec_eval and ranx: it names measures as users write them
(`nDCG@10`, `RR@10`, `R@100`), runs trec_eval's own code through pytrec_eval-terrier (the
numbers BEIR and TREC report), and installs as wheels with numpy<2; ranx would pull numba.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import ir_measures
from scipy.stats import kendalltau

from reranker_eval.errors import EvalError

DEFAULT_MEASURES = ("nDCG@10", "RR@10", "R@10")

Run = Mapping[str, Mapping[str, float]]
Qrels = Mapping[str, Mapping[str, int]]


def parse_measures(names: Sequence[str]) -> list[ir_measures.Measure]:
    """ir-measures measures from their names (EvalError naming a bad one)."""
    measures = []
    for name in names:
        try:
            measures.append(ir_measures.parse_measure(name))
        except (ValueError, NameError) as exc:
            raise EvalError(f"--metrics: {name!r} is not an ir-measures measure ({exc})") from None
    if not measures:
        raise EvalError("--metrics: give at least one measure, e.g. nDCG@10")
    return measures


def evaluate(measures: Sequence[ir_measures.Measure], qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean of each measure over the queries (ir-measures' aggregate), keyed by the measure's name."""
    values = ir_measures.calc_aggregate(measures, qrels, run)
    return {str(m): float(values[m]) for m in measures}


def mean_kendall_tau(
    scores: Mapping[str, Sequence[float]], reference: Mapping[str, Sequence[float]]
) -> float | None:
    """Kendall's tau-b between two configurations' scores of the same candidates, averaged over
    the queries (queries where either ranks every candidate equal are left out)."""
    taus = []
    for qid, ref in reference.items():
        if len(ref) < 2:
            continue
        tau = kendalltau(scores[qid], ref).statistic
        if not math.isnan(tau):
            taus.append(float(tau))
    return sum(taus) / len(taus) if taus else None
