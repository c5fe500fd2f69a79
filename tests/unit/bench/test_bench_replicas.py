"""bench.replicas and bench.fake_triton without starting anything: the fake's BYTES decoding and
scores, and the report table."""

from __future__ import annotations

from bench.fake_triton import bytes_items, passage_score
from bench.replicas import table


def test_raw_bytes_layout_is_decoded():
    items = [b"query", "大熊猫".encode(), b""]
    raw = b"".join(len(i).to_bytes(4, "little") + i for i in items)
    assert bytes_items(raw) == items


def test_fake_scores_are_stable_and_depend_on_both_texts_and_the_manifest():
    assert passage_score(b"q", b"p") == passage_score(b"q", b"p")
    variants = {passage_score(b"q", b"p"), passage_score(b"q2", b"p"), passage_score(b"q", b"p2")}
    assert len(variants | {passage_score(b"q", b"p", '{"v": 2}')}) == 4
    assert 0 <= passage_score(b"q", b"p") < 1


def test_table_reports_scaling_against_the_ideal():
    setups = {
        name: {"rps": rps, "p50_ms": 10.0, "p99_ms": 20.0, "api_cpu_ms_per_request": 1.0}
        for name, rps in (
            ("1 replica", 45.0),
            ("2 replicas", 90.0),
            ("3 replicas", 135.0),
            ("2 fast + 1 slow", 90.0),
        )
    }
    result = {
        "load": {"ideal_rps_per_replica": 50.0},
        "setups": setups,
        "scaling": {1: 1.0, 2: 1.0, 3: 1.0},
        "slow_p99_ratio": 1.1,
    }
    lines = table(result)
    assert "| 3 replicas | 135 | 0.90 | 10.0 | 20.0 | 1.00 |" in lines
    assert "| 2 fast + 1 slow | 90 | 0.60 |" in lines[-3]
    assert lines[-1].endswith("without it: 1.10")
