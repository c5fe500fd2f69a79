"""A deterministic synthetic relevance task the tiny rerankers are trained on.

A query is two distinct words; a passage is a sequence of words; the passage's relevance to the
query is how many of the two query words it contains (0, 1 or 2). Every word is one token in
both tiny tokenizers (export/tiny/tokenizer_builder.py), so a two-layer model can learn the task
in a few thousand small steps, and a trained model's scores are then ordered by relevance with
clear gaps: a fixture on which reduced-precision rankings can be judged (random-weight models
give scores that differ by rounding noise only).

    from export.tiny.relevance_task import evaluation_set, training_batch
    queries = evaluation_set(seed=0, n_queries=10, passages_per_query=30)

Everything is drawn from numpy's seeded generator, which gives the same draws on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# One token each in both tiny tokenizers (checked by tests/unit/export/test_relevance_task.py).
WORDS: tuple[str, ...] = (
    "Fra", "Fran", "Franc", "France", "an", "and", "ans", "answ", "answe", "answer", "bea", "bear",
    "ca", "cap", "capi", "capit", "capita", "capital", "con", "cont", "conta", "contai", "contain",
    "is", "of", "pa", "pan", "pand", "panda", "pas", "pass", "passa", "passag", "passage", "pr",
    "qu", "que", "quer", "query", "th", "the", "to", "wh", "whe", "whet", "wheth", "whethe", "whether",
)  # fmt: skip

QUERY_WORDS = 2
MAX_RELEVANCE = QUERY_WORDS
MIN_PASSAGE_WORDS = 4
MAX_PASSAGE_WORDS = 16


@dataclass(frozen=True)
class EvaluationQuery:
    """One query with its candidate passages and each passage's graded relevance (0..2)."""

    query: str
    passages: tuple[str, ...]
    relevance: tuple[int, ...]

    def pairs(self) -> list[tuple[str, str]]:
        """(query, passage) for every candidate, in candidate order."""
        return [(self.query, p) for p in self.passages]


def _query_words(rng: np.random.Generator) -> list[str]:
    return [WORDS[i] for i in rng.choice(len(WORDS), size=QUERY_WORDS, replace=False)]


def _passage(rng: np.random.Generator, query_words: list[str], relevance: int) -> str:
    """A passage of random filler words containing exactly `relevance` of the query words
    (each contained word once or twice, at random places)."""
    n = int(rng.integers(MIN_PASSAGE_WORDS, MAX_PASSAGE_WORDS + 1))
    filler = [w for w in WORDS if w not in query_words]
    words = [filler[i] for i in rng.integers(0, len(filler), size=n)]
    contained = [query_words[i] for i in rng.choice(QUERY_WORDS, size=relevance, replace=False)]
    for word in contained:
        for _ in range(int(rng.integers(1, 3))):
            words[int(rng.integers(0, len(words)))] = word
    # A contained word may have been overwritten by the other one: put it back if so.
    for k, word in enumerate(contained):
        if word not in words:
            words[k] = word
    return " ".join(words)


def _relevance(rng: np.random.Generator) -> int:
    """Half the passages irrelevant, a quarter each with one or both query words."""
    return int(rng.choice([0, 0, 1, 2]))


def training_batch(rng: np.random.Generator, size: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    """`size` fresh (query, passage) pairs and their targets relevance / MAX_RELEVANCE in [0, 1]."""
    pairs, targets = [], []
    for _ in range(size):
        words = _query_words(rng)
        rel = _relevance(rng)
        pairs.append((" ".join(words), _passage(rng, words, rel)))
        targets.append(rel / MAX_RELEVANCE)
    return pairs, np.asarray(targets, dtype=np.float32)


def training_pairs(seed: int, n: int) -> tuple[list[tuple[str, str]], np.ndarray]:
    """`n` training pairs and targets drawn from `seed` (see `training_batch`)."""
    return training_batch(np.random.default_rng(seed), n)


def evaluation_set(seed: int, n_queries: int, passages_per_query: int) -> list[EvaluationQuery]:
    """Queries with candidate passages and graded relevance labels (a small retrieval test set).

    Candidates mix every relevance grade (0: neither query word, 1: one, 2: both). Use a seed
    other than the training seeds (trained.py trains on seeds below 1000) for held-out data."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_queries):
        words = _query_words(rng)
        grades = [_relevance(rng) for _ in range(passages_per_query)]
        passages = tuple(_passage(rng, words, g) for g in grades)
        out.append(EvaluationQuery(" ".join(words), passages, tuple(grades)))
    return out
