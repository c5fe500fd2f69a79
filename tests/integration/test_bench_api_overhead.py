"""`make bench`'s rerank-API section (bench/api_overhead.py), end to end on a small request: real
embedded Triton, the real API process, both paths timed and the service's own figures read back."""

from __future__ import annotations

from bench import api_overhead


def test_api_overhead_section_measures_both_paths_with_equal_scores():
    lines: list[str] = []
    result = api_overhead.run(lines.append, "quick", 8, 40, [1, 2], 1, 4)
    assert result["max_abs_score_diff"] < 1e-6
    assert set(result["levels"]) == {"1", "2"}
    for level in result["levels"].values():
        for path in ("direct", "api"):
            assert level[path]["requests"] == 4 and 0 < level[path]["p50_ms"] <= level[path]["p95_ms"]
            assert level[path]["throughput_rps"] > 0
        assert level["api_cpu_ms_per_request"] >= 0  # /proc counts CPU in 10 ms ticks
        # the service's own time around its Triton call: positive, and less than a whole API call
        assert 0 < level["service_added_ms_per_request"] < level["api"]["p95_ms"]
    assert result["levels"]["1"]["paired_overhead_ms"]["pairs"] == 4
    printed = api_overhead.table(result)
    assert printed[0].split()[0] == "c" and "paired overhead" in printed[-2]
