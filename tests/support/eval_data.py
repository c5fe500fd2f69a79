"""Synthetic evaluation sets for reranker_eval's tests, written in the layouts users have:
BEIR (corpus.jsonl, queries.jsonl, qrels TSV) with a TREC first-stage run, and one JSONL file."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from export.tiny.relevance_task import evaluation_set


@dataclass(frozen=True)
class EvalSet:
    queries: dict[str, str]
    documents: dict[str, str]
    candidates: dict[str, list[str]]  # first-stage order, best first
    qrels: dict[str, dict[str, int]]


def synthetic_set(n_queries: int = 4, passages: int = 20, seed: int = 4242) -> EvalSet:
    """Held-out queries of the synthetic relevance task the tiny rerankers are trained on
    (export/tiny/relevance_task.py; grade = how many of the query's two words a passage holds),
    the candidates in drawn order as the first stage."""
    queries, documents, candidates, qrels = {}, {}, {}, {}
    for q, item in enumerate(evaluation_set(seed, n_queries, passages)):
        qid = f"q{q}"
        queries[qid] = item.query
        ids = [f"{qid}-d{p}" for p in range(len(item.passages))]
        documents.update(zip(ids, item.passages))
        candidates[qid] = ids
        qrels[qid] = dict(zip(ids, item.relevance))
    return EvalSet(queries, documents, candidates, qrels)


def write_beir(data: EvalSet, directory: Path) -> Path:
    """corpus.jsonl, queries.jsonl, qrels/test.tsv and run.trec under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "qrels").mkdir(exist_ok=True)
    with open(directory / "corpus.jsonl", "w") as out:
        for docid, text in data.documents.items():
            out.write(json.dumps({"_id": docid, "title": "", "text": text}) + "\n")
    with open(directory / "queries.jsonl", "w") as out:
        for qid, text in data.queries.items():
            out.write(json.dumps({"_id": qid, "text": text}) + "\n")
    with open(directory / "qrels" / "test.tsv", "w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for qid, grades in data.qrels.items():
            for docid, grade in grades.items():
                out.write(f"{qid}\t{docid}\t{grade}\n")
    with open(directory / "run.trec", "w") as out:
        for qid, ids in data.candidates.items():
            for rank, docid in enumerate(ids, 1):
                out.write(f"{qid} Q0 {docid} {rank} {100 - rank} bm25\n")
    return directory


def write_jsonl(data: EvalSet, path: Path) -> Path:
    """One line per query: {query_id, query, documents: [{id, text}], relevance: [grades]}."""
    with open(path, "w") as out:
        for qid, ids in data.candidates.items():
            docs = [{"id": d, "text": data.documents[d]} for d in ids]
            grades = [data.qrels[qid][d] for d in ids]
            out.write(
                json.dumps(
                    {"query_id": qid, "query": data.queries[qid], "documents": docs, "relevance": grades}
                )
                + "\n"
            )
    return path
