"""bench.text_path (text path vs token path, a section of `make bench`): its round scheduling and
summary arithmetic, and one --quick run against the real embedded server in which all three paths
(client tokenization, raw BYTES requests to the text model, the SDK with tokenize="server") must
return the same scores."""

from __future__ import annotations

import json

import pytest

from bench import text_path
from bench.text_path import PATHS, TEXT_PATHS, Sample, round_order, summarize_level


def test_every_path_leads_one_round_in_turn():
    orders = [round_order(r) for r in range(len(PATHS))]
    assert all(sorted(o) == sorted(PATHS) for o in orders)
    assert [o[0] for o in orders] == list(PATHS)
    assert round_order(len(PATHS)) == round_order(0)


def test_summary_pools_rounds_and_divides_by_the_token_path():
    def sample(wall: float, pairs: int = 100, cpu: float = 2.0) -> Sample:
        return Sample(wall_s=wall, latencies_s=[wall], cpu_s=cpu, pairs=pairs)

    samples = {
        "token": [sample(1.0), sample(3.0)],
        "text": [sample(1.0), sample(4.0, cpu=3.0)],
        "text-sdk": [sample(2.0), sample(2.0)],
    }
    s = summarize_level(samples)
    assert s["token"]["pairs_per_s"] == pytest.approx(50.0)  # 200 pairs in 4 s
    assert s["text"]["pairs_per_s"] == pytest.approx(40.0)  # 200 pairs in 5 s
    assert s["text"]["ratio_vs_token"] == pytest.approx(0.8) and not s["text"]["within_target"]
    assert s["text"]["round_ratios_vs_token"] == pytest.approx([1.0, 0.75])
    assert s["text"]["cpu_ratio_vs_token"] == pytest.approx(1.25)
    assert s["text-sdk"]["ratio_vs_token"] == pytest.approx(1.0) and s["text-sdk"]["within_target"]
    assert s["token"]["p50_s"] == pytest.approx(2.0) and s["token"]["calls"] == 2


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("text-path") / "text-path-quick.json"
    assert text_path.main(["--quick", "--out", str(out)]) == 0
    return json.loads(out.read_text())


def test_quick_run_scores_the_same_on_every_path(quick):
    # Same graph and pairs: the server's tokenization must give the client's scores exactly
    # (the embedded runner strips the text model's bucket padding again).
    assert set(quick["max_abs_diff_vs_token"]) == set(TEXT_PATHS)
    assert all(d <= 1e-6 for d in quick["max_abs_diff_vs_token"].values())


def test_quick_run_reports_every_path_level_and_round(quick):
    plan = text_path.QUICK_PLAN
    assert set(quick["levels"]) == {str(c) for c in plan.levels}
    for level, rows in quick["levels"].items():
        assert set(rows) == set(PATHS)
        for row in rows.values():
            rounds = plan.rounds_for(int(level))
            calls = int(level) * plan.calls(int(level)) * rounds
            assert row["calls"] == calls and row["pairs"] == calls * plan.passages
            assert len(row["round_pairs_per_s"]) == rounds
            assert row["pairs_per_s"] > 0 and 0 < row["p50_s"] <= row["p99_s"]
            assert row["cpu_ms_per_pair"] > 0
        for path in TEXT_PATHS:
            ratio = rows[path]["pairs_per_s"] / rows["token"]["pairs_per_s"]
            assert rows[path]["ratio_vs_token"] == pytest.approx(ratio)
    tok = quick["tokenization"]
    assert tok["pairs"] == plan.passages and tok["prepare_pairs_us"] > 0
    assert tok["client_us"] > 0 and tok["text_model_us"] > 0
    assert quick["machine"]["cpu"] and quick["model"] == f"enc-{quick['variant']}"
