"""Scoring every (configuration, query) not yet in the cache, one request at a time, timing each."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from reranker_client import RerankerError
from reranker_eval.cache import ScoreCache, Scored
from reranker_eval.configs import Configuration
from reranker_eval.dataset import Dataset, Query
from reranker_eval.errors import EvalError
from reranker_eval.scorers import Scorer, open_scorer


@dataclass
class ConfigScores:
    """A configuration's scores of every query, and the timing of the requests that made them."""

    config: Configuration
    scores: dict[str, list[float]]  # qid -> scores in candidate order
    latency_s: list[float]
    pairs: int
    run: dict[str, dict[str, float]]  # {qid: {docid: score}}, as the metrics library takes it
    scored_now: int = 0  # queries scored by this run (the others came from the cache)


def chunks(query: Query, size: int | None) -> list[tuple[int, int]]:
    """[start, end) ranges of the passages sent in one request each."""
    n = len(query.passages)
    step = size or n
    return [(i, min(i + step, n)) for i in range(0, n, step)]


def score_query(scorer: Scorer, config: Configuration, query: Query) -> tuple[list[float], list[float]]:
    """Scores of one query's candidates (in order) and each request's latency in seconds."""
    scores: list[float] = []
    latency: list[float] = []
    for start, end in chunks(query, config.batch_size):
        began = time.perf_counter()
        try:
            part = scorer.score(query.text, query.passages[start:end])
        except RerankerError as exc:
            raise EvalError(f"{config.label}: query {query.qid!r}: {exc}") from None
        latency.append(time.perf_counter() - began)
        if len(part) != end - start:
            raise EvalError(
                f"{config.label}: query {query.qid!r}: {len(part)} scores for {end - start} passages"
            )
        scores += part
    return scores, latency


def collect(dataset: Dataset, config: Configuration, cache: ScoreCache, scored_now: int) -> ConfigScores:
    """A configuration's cached scores of every query of the dataset."""
    scores: dict[str, list[float]] = {}
    latency: list[float] = []
    for query in dataset.queries:
        entry = cache.get(config.key, query.qid, query.fingerprint)
        if entry is None:
            raise EvalError(f"{config.label}: query {query.qid!r} was not scored")
        scores[query.qid] = entry.scores
        latency += entry.latency_s
    run = {q.qid: dict(zip(q.doc_ids, scores[q.qid])) for q in dataset.queries}
    return ConfigScores(config, scores, latency, dataset.pairs, run, scored_now)


def run_all(
    dataset: Dataset,
    configs: Sequence[Configuration],
    cache: ScoreCache,
    *,
    progress: bool | None = None,
    opener: Callable[[Configuration], Scorer] = open_scorer,
) -> list[ConfigScores]:
    """Every configuration's scores: from the cache where present, else scored now (one warm-up
    request per configuration first, not timed). `progress` None: a bar when stderr is a terminal."""
    todo = {
        c.key: [q for q in dataset.queries if cache.get(c.key, q.qid, q.fingerprint) is None] for c in configs
    }
    total = sum(len(qs) for qs in todo.values())
    results = []
    with tqdm(total=total, unit="query", disable=(not progress) if progress is not None else None) as bar:
        for config in configs:
            missing = todo[config.key]
            if missing:
                bar.set_postfix_str(config.label)
                scorer = opener(config)
                try:
                    first = missing[0]
                    score_query(
                        scorer, config, Query(first.qid, first.text, first.doc_ids[:1], first.passages[:1])
                    )
                    for query in missing:
                        scores, latency = score_query(scorer, config, query)
                        cache.put(Scored(config.key, query.qid, query.fingerprint, scores, latency))
                        bar.update(1)
                finally:
                    scorer.close()
            results.append(collect(dataset, config, cache, len(missing)))
    return results
