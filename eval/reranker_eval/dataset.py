"""The evaluation set: queries with their first-stage candidates (best first) and judgements.

Two layouts are read, both streaming: BEIR (corpus.jsonl, queries.jsonl, a qrels TSV) with a
first-stage TREC run, and one JSON Lines file of {query, documents, relevance}. Only the documents
a run names are kept in memory, so a large corpus costs one pass over its file.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reranker_eval.errors import DataError, EvalError
from reranker_eval.readers import json_objects, qrels_lines, string_field, trec_run


@dataclass(frozen=True)
class Query:
    """One query and its candidates in first-stage order (best first)."""

    qid: str
    text: str
    doc_ids: tuple[str, ...]
    passages: tuple[str, ...]

    @cached_property
    def fingerprint(self) -> str:
        """Identifies what is scored for this query: query text, candidate ids and their texts."""
        digest = hashlib.sha256(self.text.encode())
        for doc_id, passage in zip(self.doc_ids, self.passages):
            digest.update(b"\0" + doc_id.encode() + b"\0" + passage.encode())
        return digest.hexdigest()[:24]


@dataclass
class Dataset:
    """Queries (in input order) with candidates, and the judgements qrels[qid][docid] = grade."""

    name: str
    queries: list[Query]
    qrels: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)

    @property
    def pairs(self) -> int:
        return sum(len(q.doc_ids) for q in self.queries)

    def first_stage_run(self) -> dict[str, dict[str, float]]:
        """The first-stage order as a run: the k candidates of a query scored k, k-1, ..., 1."""
        return {q.qid: {d: float(len(q.doc_ids) - i) for i, d in enumerate(q.doc_ids)} for q in self.queries}


def _positive(value: int | None, name: str) -> None:
    if value is not None and value < 1:
        raise EvalError(f"{name} must be at least 1, not {value}")


@dataclass
class _RunQuery:
    first_line: int
    # (score, -rank, docid, line) of the kept candidates, a min-heap when a top_k bounds it: the
    # worst kept candidate first, dropped when a better one comes
    heap: list[tuple[float, int, str, int]] = field(default_factory=list)
    kept: set[str] = field(default_factory=set)

    @property
    def candidates(self) -> list[tuple[float, int, str, int]]:
        """(-score, rank, docid, line), best first (ties: lower rank first)."""
        return sorted((-score, -neg_rank, docid, line) for score, neg_rank, docid, line in self.heap)


def read_run(path: Path, top_k: int | None) -> dict[str, _RunQuery]:
    """Per query (first-appearance order) its top_k candidates; memory grows with the candidates
    kept, not with the file."""
    queries: dict[str, _RunQuery] = {}
    for line, qid, docid, rank, score in trec_run(path):
        entry = queries.setdefault(qid, _RunQuery(line))
        if docid in entry.kept:
            raise DataError(path, line, f"document {docid!r} is listed twice for query {qid!r}")
        item = (score, -rank, docid, line)
        entry.kept.add(docid)
        if top_k is None or len(entry.heap) < top_k:
            heapq.heappush(entry.heap, item)
        else:
            entry.kept.discard(heapq.heappushpop(entry.heap, item)[2])
    if not queries:
        raise DataError(path, None, "the run is empty")
    return queries


def read_qrels(path: Path, wanted: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
    """qrels[qid][docid] = relevance, for the `wanted` queries only (all when None)."""
    keep = set(wanted) if wanted is not None else None
    qrels: dict[str, dict[str, int]] = {}
    for _, qid, docid, relevance in qrels_lines(path):
        if keep is None or qid in keep:
            qrels.setdefault(qid, {})[docid] = relevance
    return qrels


def read_beir_queries(path: Path, wanted: set[str]) -> dict[str, str]:
    """Text of the `wanted` queries of a BEIR queries.jsonl ({"_id", "text"})."""
    texts: dict[str, str] = {}
    for line, obj in json_objects(path):
        qid = string_field(path, line, obj, "_id", "id", "query_id")
        if qid in wanted:
            texts[qid] = string_field(path, line, obj, "text", "query")
            if not texts[qid].strip():
                raise DataError(path, line, f"query {qid!r} has empty text")
    return texts


def read_beir_corpus(path: Path, wanted: set[str]) -> dict[str, str]:
    """Text of the `wanted` documents of a BEIR corpus.jsonl: title and text joined by a space,
    as BEIR's cross-encoder reranking does."""
    texts: dict[str, str] = {}
    for line, obj in json_objects(path):
        docid = string_field(path, line, obj, "_id", "id", "doc_id")
        if docid in wanted:
            title = string_field(path, line, obj, "title", required=False)
            body = string_field(path, line, obj, "text", "contents", required=False)
            text = f"{title} {body}".strip()
            if not text:
                raise DataError(path, line, f"document {docid!r} has no title or text to score")
            texts[docid] = text
    return texts


def load_beir(
    corpus: Path,
    queries: Path,
    qrels: Path,
    run: Path,
    *,
    top_k: int | None = None,
    max_queries: int | None = None,
    skip_unjudged: bool = False,
) -> Dataset:
    """A BEIR-layout collection with a first-stage TREC run: the top_k candidates of the run's
    queries (the first max_queries of them)."""
    _positive(top_k, "--top-k")
    _positive(max_queries, "--max-queries")
    run_queries = read_run(run, top_k)
    judged = read_qrels(qrels, run_queries)
    notes = []
    unjudged = [qid for qid in run_queries if qid not in judged]
    if unjudged:
        if not skip_unjudged:
            qid = unjudged[0]
            raise DataError(
                run,
                run_queries[qid].first_line,
                f"query {qid!r} has no judgements in {qrels} ({len(unjudged)} such queries; "
                "--skip-unjudged leaves them out)",
            )
        notes.append(f"{len(unjudged)} run queries without judgements left out")
    order = [qid for qid in run_queries if qid in judged][:max_queries]
    ranked = {qid: run_queries[qid].candidates for qid in order}  # (-score, rank, docid, line)
    doc_lines: dict[str, int] = {}
    for candidates in ranked.values():
        for _, _, docid, line in candidates:
            doc_lines.setdefault(docid, line)
    query_texts = read_beir_queries(queries, set(ranked))
    for qid in ranked:
        if qid not in query_texts:
            raise DataError(run, run_queries[qid].first_line, f"query {qid!r} is not in {queries}")
    doc_texts = read_beir_corpus(corpus, set(doc_lines))
    for docid, line in doc_lines.items():
        if docid not in doc_texts:
            raise DataError(run, line, f"document {docid!r} is not in {corpus}")
    items = [
        Query(qid, query_texts[qid], tuple(c[2] for c in cands), tuple(doc_texts[c[2]] for c in cands))
        for qid, cands in ranked.items()
    ]
    return Dataset(
        f"{corpus.parent.name or corpus.name} / {run.name}", items, {q: judged[q] for q in ranked}, notes
    )


def _document(path: Path, line: int, i: int, doc: Any) -> tuple[str, str]:
    if isinstance(doc, str):
        doc_id, text = f"d{i}", doc
    elif isinstance(doc, dict):
        doc_id = string_field(path, line, doc, "id", "_id", "doc_id", required=False) or f"d{i}"
        text = string_field(path, line, doc, "text", "document")
    else:
        raise DataError(path, line, f"documents[{i}] must be a string or an object with 'text'")
    if not text.strip():
        raise DataError(path, line, f"documents[{i}] ({doc_id!r}) is empty")
    return doc_id, text


def _relevance(path: Path, line: int, value: Any, doc_ids: list[str]) -> dict[str, int]:
    if isinstance(value, list):
        if len(value) != len(doc_ids):
            raise DataError(path, line, f"'relevance' has {len(value)} grades for {len(doc_ids)} documents")
        pairs = list(zip(doc_ids, value))
    elif isinstance(value, dict):
        unknown = sorted(set(value) - set(doc_ids))
        if unknown:
            raise DataError(path, line, f"'relevance' names unknown document id(s) {', '.join(unknown[:5])}")
        pairs = list(value.items())
    else:
        raise DataError(path, line, "missing 'relevance': a list of grades (one per document) or {id: grade}")
    grades = {}
    for doc_id, grade in pairs:
        if isinstance(grade, bool) or not isinstance(grade, int):
            raise DataError(path, line, f"relevance of {doc_id!r} must be an integer, not {grade!r}")
        grades[doc_id] = grade
    return grades


def load_jsonl(path: Path, *, top_k: int | None = None, max_queries: int | None = None) -> Dataset:
    """One JSON object per line: {"query", "documents" (first-stage order; strings or
    {"id", "text"}), "relevance" (a grade per document, or {id: grade}), "query_id" (optional)}."""
    _positive(top_k, "--top-k")
    _positive(max_queries, "--max-queries")
    queries: list[Query] = []
    qrels: dict[str, dict[str, int]] = {}
    for line, obj in json_objects(path):
        if max_queries is not None and len(queries) >= max_queries:
            break
        qid = string_field(path, line, obj, "query_id", "qid", "_id", required=False) or f"q{line}"
        if qid in qrels:
            raise DataError(path, line, f"query id {qid!r} appears twice")
        text = string_field(path, line, obj, "query", "text")
        if not text.strip():
            raise DataError(path, line, "'query' is empty")
        docs = obj.get("documents")
        if not isinstance(docs, list) or not docs:
            raise DataError(path, line, "'documents' must be a non-empty list")
        parsed = [_document(path, line, i, d) for i, d in enumerate(docs)]
        doc_ids = [d for d, _ in parsed]
        if len(set(doc_ids)) != len(doc_ids):
            raise DataError(path, line, "document ids repeat within the query")
        qrels[qid] = _relevance(path, line, obj.get("relevance"), doc_ids)
        parsed = parsed[:top_k]
        queries.append(Query(qid, text, tuple(d for d, _ in parsed), tuple(t for _, t in parsed)))
    if not queries:
        raise DataError(path, None, "no queries in the file")
    return Dataset(path.name, queries, qrels)
