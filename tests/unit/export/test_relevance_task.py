"""The synthetic relevance task the trained tiny rerankers learn (export/tiny/relevance_task.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from export.tiny import relevance_task
from export.tiny.tokenizer_builder import build_decoder_tokenizer, build_xlmr_tokenizer


def _relevance(query: str, passage: str) -> int:
    words = passage.split()
    return sum(w in words for w in query.split())


@pytest.mark.parametrize("build", [build_xlmr_tokenizer, build_decoder_tokenizer])
def test_every_word_is_one_token_in_both_tiny_tokenizers(tmp_path: Path, build):
    tok = Tokenizer.from_file(str(build(tmp_path) / "tokenizer.json"))
    for word in relevance_task.WORDS:
        ids = tok.encode(f"the {word} the", add_special_tokens=False).ids
        assert len(ids) == 3, (word, tok.encode(f"the {word} the", add_special_tokens=False).tokens)


def test_evaluation_set_labels_count_the_query_words_in_the_passage():
    queries = relevance_task.evaluation_set(seed=5000, n_queries=20, passages_per_query=30)
    assert len(queries) == 20
    grades = []
    for q in queries:
        assert len(q.query.split()) == relevance_task.QUERY_WORDS and len(q.passages) == 30
        for passage, grade in zip(q.passages, q.relevance):
            assert _relevance(q.query, passage) == grade
            words = passage.split()
            assert relevance_task.MIN_PASSAGE_WORDS <= len(words) <= relevance_task.MAX_PASSAGE_WORDS
        grades += q.relevance
        assert q.pairs()[0] == (q.query, q.passages[0])
    assert set(grades) == {0, 1, 2}


def test_same_seed_same_data_other_seed_other_data():
    a = relevance_task.evaluation_set(seed=1, n_queries=3, passages_per_query=5)
    assert a == relevance_task.evaluation_set(seed=1, n_queries=3, passages_per_query=5)
    assert a != relevance_task.evaluation_set(seed=2, n_queries=3, passages_per_query=5)


def test_training_targets_are_relevance_over_its_maximum():
    pairs, targets = relevance_task.training_pairs(seed=3, n=200)
    assert len(pairs) == len(targets) == 200
    expected = [_relevance(q, p) / relevance_task.MAX_RELEVANCE for q, p in pairs]
    np.testing.assert_array_equal(targets, np.asarray(expected, dtype=np.float32))
