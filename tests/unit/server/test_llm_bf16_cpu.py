"""An LLM reranker exported --dtype bfloat16, run on the CPU in bfloat16 by the runner's scorer:
ranks like float32 on the trained tiny Gemma (export/tiny/trained.py). Skipped, saying so, where
the CPU has no native bf16 (the runner then computes float32: test_llm_cpu_dtype.py)."""

from __future__ import annotations

import pytest

from bench.precision import llm_quality
from export.precision_agreement import MAX_REL_DIFF, MIN_TOP_K_AGREEMENT
from reranker_core.cpu_features import bf16_support


@pytest.mark.skipif(not bf16_support().native, reason=f"this CPU has {bf16_support().describe()}")
def test_bfloat16_on_cpu_ranks_like_float32_on_the_trained_gemma(tmp_path):
    a = llm_quality(tmp_path)
    assert a.spread > 1.0 and a.max_abs_diff > 0, a.summary()  # meaningful scores, really bf16
    assert a.separated_swaps == 0, a.summary()
    assert a.top_k_agreement >= MIN_TOP_K_AGREEMENT, a.summary()
    # The 5% target itself (docs/benchmarks.md: 2.2% on this fixture, 2.1-2.8% over three training
    # seeds; the earlier, less separated fixtures gave 2.5-6.1% depending on the recipe).
    assert a.max_rel_diff <= MAX_REL_DIFF, a.summary()
