"""The benchmark harness in --quick mode (small shapes): one end-to-end run of `make bench`'s code
(FlagEmbedding, ORT in-process, client -> embedded Triton) plus the perf sweep, checked for
structure and for score agreement between the three paths."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench import perf_sweep, procstats
from bench import run as bench_run
from bench.common import CACHE, QUICK, drift, latency_stats
from bench.models import build_encoder_checkpoint
from bench.workloads import encode_encoder_pairs, mixed_pairs, rerank_1x100
from tests.support.oracle import oracle_python

needs_oracle = pytest.mark.skipif(
    not Path(oracle_python()).exists(), reason="FlagEmbedding oracle env (.venv-oracle) missing: make oracle"
)


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "bench-quick.json"
    skip = [] if Path(oracle_python()).exists() else ["--skip-flagembedding"]
    assert (
        bench_run.main(
            [
                "--quick",
                "--variants",
                "fused,int8+t256",
                "--concurrency",
                "1,2",
                "--out",
                str(out),
                "--skip-text-path",
                "--skip-api",
                *skip,
            ]
        )
        == 0
    )
    assert out.with_suffix(".png").stat().st_size > 10_000
    return json.loads(out.read_text())


def test_workloads_have_the_token_lengths_they_claim():
    ckpt = build_encoder_checkpoint(QUICK)
    work = rerank_1x100(ckpt, passages=12, tokens=60)
    ids = encode_encoder_pairs(ckpt, work.pairs)
    assert [len(s) for s in ids] == work.tokens
    assert all(50 <= n <= 66 for n in work.tokens)
    assert len({q for q, _ in work.pairs}) == 1  # one query, many passages
    mixed = mixed_pairs(ckpt, n=30, low=16, high=64)
    assert min(mixed.tokens) >= 12 and max(mixed.tokens) <= 64
    assert len({q for q, _ in mixed.pairs}) > 1


def test_process_tree_measures_a_live_process_tree():
    from reranker_server.process_tree import process_tree, tree_cpu_s, tree_rss_mib

    me = os.getpid()
    assert me in process_tree(me)
    assert tree_rss_mib(me) > 10
    before = tree_cpu_s(me)
    sum(i * i for i in range(2_000_000))
    assert tree_cpu_s(me) > before
    with procstats.PeakRss(me, interval=0.05) as rss:
        sum(i * i for i in range(200_000))
    assert rss.peak_mb >= tree_rss_mib(me) * 0.5 > 0


def test_drift_and_agreement_helpers():
    ref = list(np.linspace(0, 1, 20))
    same = drift(ref, ref)
    assert same["max_abs"] == 0 and same["spearman"] == pytest.approx(1.0)
    assert same["top10"] == {"overlap": 1.0, "same_order": True}
    flipped = drift(ref, ref[::-1])
    assert flipped["spearman"] == pytest.approx(-1.0) and flipped["top10"]["overlap"] == 0.0
    assert latency_stats([1.0, 2.0, 3.0])["p50_s"] == 2.0


@needs_oracle
def test_quick_bench_runs_all_three_paths_and_they_agree(quick_result):
    r = quick_result
    flag = r["flagembedding"]["workloads"]
    for variant in ("fused", "int8+t256"):
        for name in ("rerank", "mixed"):
            served, inproc = r["served"][variant][name], r["inprocess"][variant][name]
            assert served["pairs_per_s"] > 0 and inproc["pairs_per_s"] > 0
            assert len(served["scores"]) == len(flag[name]["scores"])
            # Same graph in and out of the server: same scores (int8 runs one row per ORT call,
            # so its per-call activation scales do not depend on batch neighbours either).
            np.testing.assert_allclose(served["scores"], inproc["scores"], atol=1e-5)
        lat = r["served"][variant]["latency"]
        assert set(lat) == {"1", "2"} and all(v["p50_s"] <= v["p99_s"] for v in lat.values())
        assert r["served"][variant]["peak_rss_mb"] > r["served"][variant]["idle_rss_mb"] * 0.5 > 0
    # fused fp32 is exact: client + server scores equal FlagEmbedding's (fp32 CPU parity, 1e-4)
    for name in ("rerank", "mixed"):
        np.testing.assert_allclose(r["served"]["fused"][name]["scores"], flag[name]["scores"], atol=1e-4)
    cfg = (
        CACHE
        / f"repo-{build_encoder_checkpoint(QUICK).name}"
        / "enc-int8+t256"
        / "configs"
        / "embedded.pbtxt"
    ).read_text()
    assert 'key: "max_batch_tokens" value: { string_value: "256" }' in cfg
    s = r["summary"]
    assert {"fused/rerank", "fused/mixed", "int8+t256/rerank", "int8+t256/mixed"} <= set(s)
    assert s["fused/rerank"]["drift_vs_flagembedding"]["top10"]["overlap"] == 1.0
    assert all(v["x_flagembedding_wall"] > 0 for v in s.values())


def test_perf_input_data_matches_the_encoder_contract():
    rows = perf_sweep.load_rows(perf_sweep.DEFAULT_INPUT)
    assert len(rows) >= 8
    for row in rows:
        assert set(row) == {"input_ids", "attention_mask"}
        ids, mask = row["input_ids"], row["attention_mask"]
        assert ids.shape == mask.shape == (256,)
        n = int(mask.sum())
        assert 150 <= n <= 256 and mask[:n].all() and not mask[n:].any()  # right padding
        assert ids[0] == 0 and ids[n - 1] == 2 and (ids[n:] == 1).all()
    batch = perf_sweep.make_batch(rows, 3, len(rows) - 1, {"input_ids": "INT64", "attention_mask": "INT64"})
    assert batch["input_ids"].shape == (3, 256) and batch["input_ids"].dtype == np.int64
    np.testing.assert_array_equal(batch["input_ids"][1], rows[0]["input_ids"])  # cycles


def test_perf_sweep_against_an_embedded_server(quick_result, tmp_path):
    repo = CACHE / f"repo-{build_encoder_checkpoint(QUICK).name}"
    out = tmp_path / "sweep.json"
    assert (
        perf_sweep.main(
            [
                "--model",
                "enc-fused",
                "--repository",
                str(repo),
                "--levels",
                "1,4",
                "--requests-per-level",
                "8",
                "--batch",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert [lv["concurrency"] for lv in result["levels"]] == [1, 4]
    assert all(lv["requests"] == 8 and lv["rows_per_s"] > 0 for lv in result["levels"])
    assert out.with_suffix(".png").exists()
