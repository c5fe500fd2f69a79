"""bench.precision_served, bench.llm_precision and bench.precision's arguments without starting
anything: round orders, the summaries' arithmetic and the LLM shape chosen for the RAM at hand."""

from __future__ import annotations

import pytest

from bench import llm_precision, precision_served
from bench.llm_bench import GEMMA_2B


def test_every_variant_leads_one_round_in_turn():
    variants = ["fp32", "bf16", "int8"]
    orders = [precision_served.rotated(variants, r) for r in range(3)]
    assert all(sorted(o) == sorted(variants) for o in orders)
    assert [o[0] for o in orders] == variants
    assert precision_served.rotated(variants, 3) == variants


def test_llm_rounds_alternate_the_dtype_that_goes_first():
    assert llm_precision.round_order(0) == ("float32", "bfloat16")
    assert llm_precision.round_order(1) == ("bfloat16", "float32")


def test_served_summary_takes_medians_and_divides_by_fp32():
    walls = {"fp32": [2.0, 4.0, 3.0], "bf16": [1.0, 2.0, 1.5]}
    cpus = {"fp32": [4.0, 4.0, 4.0], "bf16": [1.0, 3.0, 2.0]}
    s = precision_served.summarize(walls, cpus, pairs=30)
    assert s["fp32"]["pairs_per_s"] == pytest.approx(10.0)  # 30 pairs / median 3 s
    assert s["bf16"]["pairs_per_s"] == pytest.approx(20.0)
    assert s["bf16"]["vs_fp32"] == pytest.approx(2.0) and s["fp32"]["vs_fp32"] == pytest.approx(1.0)
    assert s["bf16"]["server_cpu_ms_per_pair"] == pytest.approx(1000 * 2.0 / 30)
    assert s["bf16"]["vs_fp32_cpu"] == pytest.approx(2.0)
    assert s["bf16"]["vs_fp32_rounds"] == pytest.approx([2.0, 2.0, 2.0])


def test_llm_summary_reports_bf16_over_fp32():
    walls = {"float32": [40.0, 44.0, 42.0], "bfloat16": [20.0, 20.0, 21.0]}
    cpus = {"float32": [80.0, 84.0, 82.0], "bfloat16": [40.0, 41.0, 42.0]}
    s = llm_precision.summarize(walls, cpus, pairs=8)
    assert s["float32"]["pairs_per_s"] == pytest.approx(8 / 42.0)
    assert s["bfloat16"]["pairs_per_s"] == pytest.approx(8 / 20.0)
    assert s["bf16_vs_fp32"] == pytest.approx(2.1)
    assert s["bf16_vs_fp32_rounds"] == pytest.approx([2.0, 2.2, 2.0])
    assert s["bf16_vs_fp32_cpu"] == pytest.approx(82.0 / 41.0)


def test_llm_shape_keeps_every_layer_when_ram_allows_and_drops_layers_otherwise():
    full = llm_precision.resident_gb(GEMMA_2B)
    assert 15 < full < 22  # fp32 (~9.4 GB) + bf16 (~4.7 GB) + the cast's fp32 embedding + reserve
    assert llm_precision.fitting_layers(GEMMA_2B, full) == GEMMA_2B.layers
    fewer = llm_precision.fitting_layers(GEMMA_2B, full - 3.0)
    assert 1 <= fewer < GEMMA_2B.layers
    assert llm_precision.resident_gb(llm_precision.with_layers(GEMMA_2B, fewer)) <= full - 3.0
    assert llm_precision.resident_gb(llm_precision.with_layers(GEMMA_2B, fewer + 1)) > full - 3.0
    assert llm_precision.fitting_layers(GEMMA_2B, 0.0) == 1
    assert llm_precision.fitting_layers(GEMMA_2B, full, most=6) == 6
    named = llm_precision.with_layers(GEMMA_2B, 6)
    assert named.layers == 6 and named.name != GEMMA_2B.name
    assert llm_precision.with_layers(GEMMA_2B, GEMMA_2B.layers) is GEMMA_2B


def test_a_server_cpu_time_below_the_clock_resolution_gives_no_cpu_ratio():
    s = precision_served.summarize(
        {"fp32": [0.01], "bf16": [0.01]}, {"fp32": [0.01], "bf16": [0.0]}, pairs=20
    )
    assert s["bf16"]["vs_fp32_cpu"] is None and s["fp32"]["vs_fp32_cpu"] == pytest.approx(1.0)


def test_gemma_seeds_are_parsed_and_a_bad_list_is_refused(capsys):
    from bench import precision

    assert precision._seeds("13, 14") == (13, 14) and precision._seeds("") == ()
    with pytest.raises(SystemExit):
        precision.main(["--gemma-seeds", "13,x"])
    assert "comma-separated list of integer seeds" in capsys.readouterr().err
