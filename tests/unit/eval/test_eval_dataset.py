"""reranker_eval's readers: BEIR + TREC run and JSONL layouts, and errors naming file and line."""

from __future__ import annotations

import gzip
import json
import random
import shutil

import pytest

from reranker_eval.dataset import load_beir, load_jsonl
from reranker_eval.errors import DataError
from tests.support.eval_data import synthetic_set, write_beir, write_jsonl


@pytest.fixture
def beir(tmp_path):
    return write_beir(synthetic_set(n_queries=3, passages=6), tmp_path / "beir")


def load(d, **kw):
    return load_beir(d / "corpus.jsonl", d / "queries.jsonl", d / "qrels" / "test.tsv", d / "run.trec", **kw)


def test_beir_and_jsonl_layouts_give_the_same_dataset(beir, tmp_path):
    data = synthetic_set(n_queries=3, passages=6)
    a = load(beir)
    b = load_jsonl(write_jsonl(data, tmp_path / "set.jsonl"))
    assert [q.qid for q in a.queries] == ["q0", "q1", "q2"]
    assert [q.doc_ids for q in a.queries] == [tuple(data.candidates[q]) for q in ("q0", "q1", "q2")]
    assert [(q.qid, q.text, q.doc_ids, q.passages) for q in a.queries] == [
        (q.qid, q.text, q.doc_ids, q.passages) for q in b.queries
    ]
    assert a.qrels == b.qrels == data.qrels
    assert a.first_stage_run()["q0"][data.candidates["q0"][0]] == 6.0


def test_run_order_is_by_score_then_rank_and_top_k_cuts(beir):
    lines = (beir / "run.trec").read_text().splitlines()
    # reverse the file: order must come from the scores, not from the line order
    (beir / "run.trec").write_text("\n".join(reversed(lines)) + "\n")
    data = synthetic_set(n_queries=3, passages=6)
    ds = load(beir, top_k=2, max_queries=2)
    assert [q.qid for q in ds.queries] == ["q2", "q1"]
    assert ds.queries[0].doc_ids == tuple(data.candidates["q2"][:2])


def test_gzip_and_trec_qrels(beir):
    with open(beir / "corpus.jsonl", "rb") as src, gzip.open(beir / "corpus.jsonl.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    rows = [line.split("\t") for line in (beir / "qrels" / "test.tsv").read_text().splitlines()[1:]]
    (beir / "qrels.trec").write_text("".join(f"{q} 0 {d} {r}\n" for q, d, r in rows))
    ds = load_beir(beir / "corpus.jsonl.gz", beir / "queries.jsonl", beir / "qrels.trec", beir / "run.trec")
    assert ds.qrels == load(beir).qrels and ds.queries == load(beir).queries


def _line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_unknown_document_in_the_run_names_the_run_line(beir):
    with open(beir / "run.trec", "a") as out:
        out.write("q1 Q0 nowhere 99 -5 bm25\n")
    with pytest.raises(DataError, match=r"run\.trec:19: document 'nowhere' is not in .*corpus\.jsonl"):
        load(beir)


def test_query_without_judgements_names_the_run_line(beir):
    qrels = beir / "qrels" / "test.tsv"
    qrels.write_text(
        "".join(line + "\n" for line in qrels.read_text().splitlines() if not line.startswith("q1\t"))
    )
    line = _line_of(beir / "run.trec", "q1 Q0")
    with pytest.raises(DataError, match=rf"run\.trec:{line}: query 'q1' has no judgements in .*test\.tsv"):
        load(beir)
    ds = load(beir, skip_unjudged=True)
    assert [q.qid for q in ds.queries] == ["q0", "q2"] and ds.notes


def test_query_missing_from_queries_file(beir):
    path = beir / "queries.jsonl"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if '"q2"' not in line))
    with pytest.raises(DataError, match=r"run\.trec:13: query 'q2' is not in"):
        load(beir)


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"_id": "x", "text": "a"', "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"text": "a"}', "missing field '_id'"),
    ],
)
def test_malformed_corpus_line_is_named(beir, bad, message):
    path = beir / "corpus.jsonl"
    lines = path.read_text().splitlines()
    lines.insert(3, bad)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=rf"corpus\.jsonl:4: {message}"):
        load(beir)


@pytest.mark.parametrize(
    "line, message",
    [
        ("q0 Q0 q0-d1 1", "expected 6 columns"),
        ("q0 Q0 q0-d1 one 3.0 x", "rank .one. and score .3.0. must be numbers"),
    ],
)
def test_malformed_run_line_is_named(beir, line, message):
    path = beir / "run.trec"
    path.write_text(line + "\n" + path.read_text())
    with pytest.raises(DataError, match=rf"run\.trec:1: {message}"):
        load(beir)


def test_invalid_utf8_is_named(beir):
    path = beir / "queries.jsonl"
    path.write_bytes(path.read_bytes() + b'{"_id": "q9", "text": "\xff"}\n')
    with pytest.raises(DataError, match=r"queries\.jsonl:4: not valid UTF-8"):
        load(beir)


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"query": "q", "documents": [], "relevance": []}, "'documents' must be a non-empty list"),
        (
            {"query": "q", "documents": ["a", "b"], "relevance": [1]},
            "'relevance' has 1 grades for 2 documents",
        ),
        ({"query": "q", "documents": ["a"], "relevance": {"zz": 1}}, "'relevance' names unknown document id"),
        ({"query": "q", "documents": ["a"]}, "missing 'relevance'"),
        ({"query": "", "documents": ["a"], "relevance": [1]}, "'query' is empty"),
        ({"query": "q", "documents": ["a", " "], "relevance": [1, 0]}, r"documents\[1\] \('d1'\) is empty"),
        ({"query": "q", "documents": ["a"], "relevance": ["1"]}, "relevance of 'd0' must be an integer"),
    ],
)
def test_bad_jsonl_line_is_named(tmp_path, obj, message):
    path = tmp_path / "set.jsonl"
    good = {"query": "ok", "documents": ["x"], "relevance": [1]}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(obj) + "\n")
    with pytest.raises(DataError, match=rf"set\.jsonl:3: {message}"):
        load_jsonl(path)


def test_jsonl_relevance_by_id_and_default_ids(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps({"query": "q", "documents": ["a", "b"], "relevance": {"d1": 2}}) + "\n")
    ds = load_jsonl(path)
    assert ds.queries[0].qid == "q1" and ds.queries[0].doc_ids == ("d0", "d1")
    assert ds.qrels == {"q1": {"d1": 2}}


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        load_jsonl(tmp_path / "nope.jsonl")


def test_top_k_keeps_the_best_of_a_long_run_with_ties(beir):
    rng = random.Random(3)
    lines = []
    for qid in ("q0", "q1", "q2"):
        docs = [f"{qid}-d{p}" for p in range(6)]
        rng.shuffle(docs)
        lines += [f"{qid} Q0 {d} {r} {rng.choice([1.0, 2.0, 2.0, 3.0])} x" for r, d in enumerate(docs, 1)]
    rng.shuffle(lines)
    (beir / "run.trec").write_text("\n".join(lines) + "\n")
    full = {q.qid: q.doc_ids for q in load(beir).queries}
    for k in (1, 2, 5):
        assert {q.qid: q.doc_ids for q in load(beir, top_k=k).queries} == {
            q: ids[:k] for q, ids in full.items()
        }
    assert all(len(ids) == 6 for ids in full.values())


def test_a_document_listed_twice_is_named(beir):
    with open(beir / "run.trec", "a") as out:
        out.write("q1 Q0 q1-d3 40 -1 bm25\n")
    with pytest.raises(DataError, match=r"run\.trec:19: document 'q1-d3' is listed twice for query 'q1'"):
        load(beir)
