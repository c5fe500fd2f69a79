"""The bf16 encoder variant served by the real embedded Triton server, through the client, on the
trained tiny fixture: it ranks like the fp32 model (export/precision_agreement.py's targets).
Skipped, saying so, where the CPU has no native bf16 (the variant then runs fp32: the unit
tests of tests/unit/server/test_bf16_runner.py check that fallback with faked CPU flags)."""

from __future__ import annotations

import numpy as np
import pytest

from export.precision_agreement import agreement
from export.tiny import relevance_task
from reranker_core.cpu_features import bf16_support

HELD_OUT_SEED = 5000


@pytest.fixture(scope="module")
def held_out():
    queries = relevance_task.evaluation_set(HELD_OUT_SEED, 10, 30)
    pairs = [list(p) for q in queries for p in q.pairs()]
    groups = [i for i, q in enumerate(queries) for _ in q.passages]
    return pairs, groups


def test_bf16_variant_serves_the_same_contract(make_client, held_out):
    pairs, _ = held_out
    scores = make_client("tiny-trained-bf16").compute_score(pairs[:40])
    assert len(scores) == 40 and all(np.isfinite(scores))


@pytest.mark.skipif(not bf16_support().native, reason=f"this CPU has {bf16_support().describe()}")
def test_served_bf16_ranks_like_served_fp32_on_the_trained_fixture(make_client, held_out):
    pairs, groups = held_out
    fp32 = make_client("tiny-trained").compute_score(pairs)
    bf16 = make_client("tiny-trained-bf16", protocol="http").compute_score(pairs)
    a = agreement(fp32, bf16, groups)
    assert a.max_abs_diff > 0, "bf16 scores equal fp32: the variant did not run in bf16"
    assert a.meets_targets(), a.summary()
