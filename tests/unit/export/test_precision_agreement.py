"""The ranking-agreement figures used to judge bf16 / fp16 / int8 against fp32."""

from __future__ import annotations

import numpy as np
import pytest

from export.precision_agreement import agreement


def _scores(seed: int = 0, queries: int = 4, per_query: int = 20):
    rng = np.random.default_rng(seed)
    ref = rng.normal(0.0, 4.0, size=queries * per_query)
    groups = np.repeat(np.arange(queries), per_query)
    return ref, groups


def test_identical_scores_agree_fully():
    ref, groups = _scores()
    a = agreement(ref, ref.copy(), groups)
    assert a.max_abs_diff == 0 and a.separated_swaps == 0 and a.kendall_tau == 1.0
    assert a.top_k_agreement == 10 and a.meets_targets()
    assert a.separated_pairs > 0 and abs(a.spread - ref.std()) < 1e-12


def test_a_swap_of_two_distant_scores_is_counted_and_fails():
    ref, groups = _scores()
    got = ref.copy()
    first = np.flatnonzero(groups == 0)
    hi, lo = first[np.argmax(ref[first])], first[np.argmin(ref[first])]
    got[hi], got[lo] = ref[lo], ref[hi]
    a = agreement(ref, got, groups)
    assert a.separated_swaps >= 1 and a.max_rel_diff > 0.05 and not a.meets_targets()
    assert a.top_k_agreement < 10


def test_noise_below_the_margin_never_counts_as_a_separated_swap():
    ref, groups = _scores()
    got = ref + np.random.default_rng(1).uniform(-0.02, 0.02, size=ref.shape) * ref.std()
    a = agreement(ref, got, groups)
    assert a.separated_swaps == 0 and a.max_rel_diff <= 0.02 and a.meets_targets()
    assert a.kendall_tau < 1.0  # near-ties may move: reported, not a criterion


def test_swaps_across_queries_do_not_count():
    ref = np.array([1.0, 2.0, 10.0, 11.0])
    got = np.array([1.0, 2.0, 0.0, 0.5])  # query 1 moved below query 0 but kept its own order
    a = agreement(ref, got, [0, 0, 1, 1], top_k=2)
    assert a.separated_swaps == 0 and a.top_k_agreement == 2


@pytest.mark.parametrize(
    ("ref", "got", "groups", "words"),
    [
        ([1.0, 2.0], [1.0], [0, 0], "must match"),
        ([1.0, 1.0], [1.0, 2.0], [0, 0], "all equal"),
        ([1.0, float("nan")], [1.0, 2.0], [0, 0], "finite"),
    ],
)
def test_bad_input_is_refused_by_name(ref, got, groups, words):
    with pytest.raises(ValueError, match=words):
        agreement(ref, got, groups)
