"""reranker_eval's scoring loop, cache and report with a stand-in scorer (no server): resuming,
scoring only what is missing, and metrics equal to ir-measures on the written TREC run."""

from __future__ import annotations

import json
import zlib

import ir_measures
import pytest

from reranker_eval.cache import ScoreCache, Scored
from reranker_eval.configs import from_spec
from reranker_eval.dataset import load_jsonl
from reranker_eval.errors import DataError, EvalError
from reranker_eval.metrics import parse_measures
from reranker_eval.pareto import pareto_front
from reranker_eval.plot import plot
from reranker_eval.report import build_report, write_trec_runs
from reranker_eval.runner import run_all
from reranker_eval.table import render
from tests.support.eval_data import synthetic_set, write_jsonl

MEASURES = parse_measures(["nDCG@10", "RR@10", "R@5"])


class FakeScorer:
    """Scores by how many query words a passage holds (+ a deterministic jitter scaled by the
    config's cutoff); after `fail_after` calls, raises `error`."""

    calls = 0

    def __init__(self, config, fail_after=None, error=KeyboardInterrupt):
        self.noise = 1.0 / (config.option_dict.get("cutoff_layers", [8])[0])
        self.fail_after, self.error = fail_after, error

    def score(self, query, passages):
        FakeScorer.calls += 1
        if self.fail_after is not None and FakeScorer.calls > self.fail_after:
            raise self.error()
        words = query.split()
        return [
            sum(w in p.split() for w in words) + self.noise * (zlib.crc32(p.encode()) % 100) / 50
            for p in passages
        ]

    def close(self):
        pass


@pytest.fixture
def dataset(tmp_path):
    return load_jsonl(write_jsonl(synthetic_set(n_queries=5, passages=12), tmp_path / "set.jsonl"))


CONFIGS = from_spec("grpc://h:1?model=m&cutoff_layers=2|4|8")


def run(dataset, cache_path, configs=CONFIGS, **kw):
    FakeScorer.calls = 0
    cache = ScoreCache(cache_path)
    try:
        return run_all(dataset, configs, cache, progress=False, opener=lambda c: FakeScorer(c, **kw))
    finally:
        cache.close()


def test_interrupted_run_resumes_and_scores_only_what_is_missing(dataset, tmp_path):
    full = run(dataset, tmp_path / "a.jsonl")
    assert FakeScorer.calls == 3 * (5 + 1)  # a warm-up request per configuration
    with pytest.raises(KeyboardInterrupt):
        run(dataset, tmp_path / "b.jsonl", fail_after=8)  # warm-up + 5 queries, warm-up + 1 query
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 6
    resumed = run(dataset, tmp_path / "b.jsonl")
    assert [r.scored_now for r in resumed] == [0, 4, 5]
    assert [r.scores for r in resumed] == [r.scores for r in full]
    again = run(
        dataset, tmp_path / "b.jsonl", configs=[*CONFIGS, *from_spec("grpc://h:1?model=m&cutoff_layers=3")]
    )
    assert [r.scored_now for r in again] == [0, 0, 0, 5] and FakeScorer.calls == 6


def test_a_failing_server_keeps_what_was_scored(dataset, tmp_path):
    with pytest.raises(EvalError, match="boom"):
        run(dataset, tmp_path / "c.jsonl", fail_after=3, error=lambda: EvalError("boom"))
    assert len(ScoreCache(tmp_path / "c.jsonl").entries) == 2


def test_changed_candidates_are_scored_again(dataset, tmp_path):
    run(dataset, tmp_path / "c.jsonl", configs=CONFIGS[:1])
    changed = load_jsonl(
        write_jsonl(synthetic_set(n_queries=5, passages=12, seed=1), tmp_path / "other.jsonl")
    )
    assert run(changed, tmp_path / "c.jsonl", configs=CONFIGS[:1])[0].scored_now == 5


def test_cache_drops_a_line_cut_by_a_kill_and_names_a_bad_line(tmp_path):
    path = tmp_path / "s.jsonl"
    cache = ScoreCache(path)
    cache.put(Scored("k", "q1", "f", [1.0], [0.1]))
    cache.close()
    with open(path, "a") as out:
        out.write('{"config": "k", "qid": "q2", "fing')
    cache = ScoreCache(path)
    assert cache.dropped_partial_line and list(cache.entries) == [("k", "q1")]
    cache.put(Scored("k", "q2", "f", [2.0], [0.1]))
    cache.close()
    assert [json.loads(line)["qid"] for line in path.read_text().splitlines()] == ["q1", "q2"]
    path.write_text("not json\n" + path.read_text())
    with pytest.raises(DataError, match=r"s\.jsonl:1: not a score cache line"):
        ScoreCache(path)


def test_report_metrics_equal_ir_measures_on_the_written_run_files(dataset, tmp_path):
    results = run(dataset, tmp_path / "a.jsonl")
    report = build_report(dataset, MEASURES, results, "input order")
    runs = write_trec_runs(results, tmp_path / "runs")
    qrels = {q: dict(g) for q, g in dataset.qrels.items()}
    for row in report["rows"][1:]:
        library = ir_measures.calc_aggregate(
            MEASURES, qrels, ir_measures.read_trec_run(str(runs[row["label"]]))
        )
        assert row["metrics"] == {str(m): library[m] for m in MEASURES}
    first = ir_measures.calc_aggregate(MEASURES, qrels, dataset.first_stage_run())
    assert report["rows"][0]["metrics"] == {str(m): first[m] for m in MEASURES}
    # the reference of the group is the deepest cutoff; its own tau is 1
    assert {r["agreement"]["reference"] for r in report["rows"][1:]} == {CONFIGS[2].label}
    assert report["rows"][3]["agreement"]["kendall_tau"] == pytest.approx(1.0)
    assert report["rows"][1]["agreement"]["kendall_tau"] < 1.0
    assert all(
        r["pairs_per_s"] > 0 and r["latency_ms"]["p95"] >= r["latency_ms"]["p50"] for r in report["rows"][1:]
    )


def test_table_marks_the_best_and_the_plot_is_written(dataset, tmp_path):
    report = build_report(dataset, MEASURES, run(dataset, tmp_path / "a.jsonl"), "input order")
    for row in report["rows"]:
        row["metrics"]["nDCG@10"] = 0.5
    report["rows"][1]["metrics"]["nDCG@10"] = 0.99
    report["rows"][1]["pairs_per_s"] = 1e9
    report["rows"][1]["pareto"] = True
    text = render(report)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["configuration", "nDCG@10"]
    best_row = next(line for line in lines if line.startswith(CONFIGS[0].label))
    assert "0.9900*" in best_row and best_row.rstrip().endswith("yes")
    assert " ref" in next(line for line in lines if line.startswith(CONFIGS[2].label))
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned
    plot(report, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pareto_front():
    points = [(10, 0.5), (20, 0.4), (5, 0.6), (5, 0.5), (20, 0.4), (1, 0.1)]
    assert pareto_front(points) == [True, True, True, False, True, False]
