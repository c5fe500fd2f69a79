"""bench.precision's served parts in --quick mode, end to end: the three encoder variants and
their text models served by one real embedded Triton server (token path and text path through
the SDK client), and the tiny Gemma exported float32 and bfloat16 served side by side."""

from __future__ import annotations

import json

import pytest

from bench import llm_precision, precision, precision_served
from reranker_core.cpu_features import bf16_support


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("precision") / "precision-quick.json"
    argv = ["--quick", "--skip-quality", "--skip-speed", "--llm", "--llm-profile", "bfloat16"]
    argv += ["--rounds", "2", "--out", str(out)]
    assert precision.main(argv) == 0
    return json.loads(out.read_text())


def test_served_part_times_every_variant_on_every_path_and_workload(quick):
    served = quick["served"]
    assert set(served["workloads"]) == {"1x20x64tok", "40x16-64tok"}
    for row in served["workloads"].values():
        for path in precision_served.PATHS:
            assert set(row[path]) == set(precision.GRAPHS)
            for variant in precision.GRAPHS:
                assert len(row[path][variant]["wall_s"]) == 2
                assert row[path][variant]["pairs_per_s"] > 0
            assert row[path]["fp32"]["vs_fp32"] == pytest.approx(1.0)
    assert len(served["load_avg_1min_per_round"]) == 2
    assert served["peak_rss_mb"] > 0


def test_text_model_scores_what_the_token_model_scores(quick):
    # Same graph, same tokenizer: the server's tokenization must give the client's scores. The
    # text model packs rows into other batches (other padded lengths): ORT's fp32 and int8 kernels
    # give the same numbers; OpenVINO's bf16 ones may move a score by a few bf16 steps (2^-7 of it).
    for row in quick["served"]["workloads"].values():
        diffs = row["max_abs_diff_text_vs_token"]
        assert set(diffs) == set(precision.GRAPHS)
        assert diffs["fp32"] <= 1e-5 and diffs["int8"] <= 1e-5
        assert diffs["bf16"] <= 4 * 2**-7 * row["max_abs_score"]["bf16"]


def test_llm_part_serves_both_dtypes_side_by_side(quick):
    llm = quick["llm"]
    assert llm["shape"]["name"] == llm_precision.QUICK_PLAN.shape.name
    assert llm["pairs"] == llm_precision.QUICK_PLAN.passages and llm["tokens_per_pair"] > 40
    for dtype in llm_precision.DTYPES:
        assert len(llm[dtype]["wall_s"]) == 2 and llm[dtype]["pairs_per_s"] > 0
    assert llm["bf16_vs_fp32"] > 0 and len(llm["bf16_vs_fp32_rounds"]) == 2


def test_llm_profile_names_where_the_scorer_spends_its_time(quick):
    prof = quick["llm"]["profile"]
    assert prof["dtype"] == "bfloat16" and prof["rows"] == llm_precision.QUICK_PLAN.passages
    shares = [op["share"] for op in prof["ops"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1.0 + 1e-9
    assert any(op["op"] in ("aten::mm", "aten::addmm", "aten::linear") for op in prof["ops"])


@pytest.mark.skipif(not bf16_support().native, reason=f"this CPU has {bf16_support().describe()}")
def test_llm_bf16_model_really_computes_in_bf16(quick):
    # Random weights score every pair alike, so only the difference is checked: nonzero (bf16 ran)
    # and small (same weights, same pairs, fp32 head).
    assert 0 < quick["llm"]["max_abs_diff_bf16_vs_fp32"] < 0.5
