"""The trained tiny rerankers (export/tiny/trained.py): cached by content, and their scores
separate the relevance grades of held-out queries clearly (the quality fixture's whole point)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer

from export.tiny import relevance_task, trained
from export.tiny.decoders import build_gemma_reranker

HELD_OUT_SEED = 5000


@pytest.fixture(scope="module")
def encoder_checkpoint():
    return trained.trained_encoder_checkpoint()


def _encoder_scores(checkpoint, pairs):
    from transformers import XLMRobertaForSequenceClassification

    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    model = XLMRobertaForSequenceClassification.from_pretrained(str(checkpoint)).eval()
    ids, mask = trained.right_padded(trained.encoder_input_ids(tok, pairs), pad=1)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[:, 0].numpy()


def _held_out():
    """The held-out queries, their pairs and grades."""
    queries = relevance_task.evaluation_set(HELD_OUT_SEED, n_queries=10, passages_per_query=30)
    return (
        queries,
        [p for q in queries for p in q.pairs()],
        np.array([g for q in queries for g in q.relevance]),
    )


def _assert_grades_ordered(scores, grades) -> None:
    means = [scores[grades == g].mean() for g in range(relevance_task.MAX_RELEVANCE + 1)]
    assert means[0] < means[1] < means[2], means
    assert scores.std() > 2.0  # random weights give ~0.01
    # Nearly every fully relevant passage outscores nearly every irrelevant one.
    assert np.quantile(scores[grades == 2], 0.05) > np.quantile(scores[grades == 0], 0.95)


def test_encoder_scores_separate_the_relevance_grades(encoder_checkpoint):
    _, pairs, grades = _held_out()
    _assert_grades_ordered(_encoder_scores(encoder_checkpoint, pairs), grades)


@pytest.fixture(scope="module")
def gemma_checkpoint():
    return trained.trained_gemma_checkpoint()


def _gemma_scores(checkpoint, pairs):
    from transformers import GemmaForCausalLM

    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    model = GemmaForCausalLM.from_pretrained(str(checkpoint)).eval()
    loss = trained._GemmaLoss(model, tok, trained.GEMMA_SETTINGS)
    ids, mask = trained.left_padded([loss.row(q, p)[0] for q, p in pairs], pad=0)
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits[:, -1, loss.yes].numpy()


def _pairwise_accuracy(queries, scores) -> float:
    """Of a query's passages of different grades, the fraction the scores order like the grades."""
    right = total = 0
    start = 0
    for q in queries:
        s, g = scores[start : start + len(q.passages)], np.array(q.relevance)
        start += len(q.passages)
        i, j = np.triu_indices(len(g), 1)
        differ = g[i] != g[j]
        right += int((np.sign(s[i] - s[j]) == np.sign(g[i] - g[j]))[differ].sum())
        total += int(differ.sum())
    return right / total


def test_gemma_scores_separate_the_relevance_grades(gemma_checkpoint):
    queries, pairs, grades = _held_out()
    scores = _gemma_scores(gemma_checkpoint, pairs)
    _assert_grades_ordered(scores, grades)
    means = [scores[grades == g].mean() for g in range(relevance_task.MAX_RELEVANCE + 1)]
    within = np.sqrt(np.mean([scores[grades == g].var() for g in range(len(means))]))
    assert means[2] - means[0] > 6 * within, (means, within)  # grades apart, not overlapping
    assert _pairwise_accuracy(queries, scores) > 0.98


def test_gemma_trains_on_the_clients_encoding_and_labels_the_query_words(tmp_path):
    from transformers import GemmaForCausalLM

    from export.llm_export import export_llm
    from reranker_core.encoding.decoder import encode_decoder_pairs
    from reranker_core.families import GEMMA
    from reranker_core.manifest import ModelManifest

    checkpoint = build_gemma_reranker(tmp_path / "ckpt", seed=3)
    export_llm(checkpoint, tmp_path / "gemma", name="gemma", family=GEMMA, dtype="float32")
    manifest = ModelManifest.load(tmp_path / "gemma")
    tok = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    loss = trained._GemmaLoss(GemmaForCausalLM.from_pretrained(str(checkpoint)), tok, trained.GEMMA_SETTINGS)
    pairs = [("panda capital", "the panda is of France panda"), ("query answer", "the pass to")]
    sent = encode_decoder_pairs(tok, manifest, pairs, max_length=512)
    for (q, p), encoded in zip(pairs, sent, strict=True):
        ids, labels = loss.row(q, p)
        assert ids == list(encoded.input_ids)
        words = [tok.id_to_token(t) for t, lab in zip(ids, labels, strict=True) if lab >= 0]
        assert words == ["\u2581" + w for w in p.split()]
        hits = [tok.id_to_token(t) for t, lab in zip(ids, labels, strict=True) if lab == 1]
        assert hits == ["\u2581" + w for w in p.split() if w in q.split()]


def test_cached_by_content_key(encoder_checkpoint, tmp_path, monkeypatch):
    assert (encoder_checkpoint / trained.DONE_FILE).exists()
    assert encoder_checkpoint.name.endswith(trained.content_key("xlmr", trained.ENCODER_SETTINGS))
    assert trained.trained_encoder_checkpoint() == encoder_checkpoint  # no retraining
    other = trained.content_key(
        "xlmr", trained.ENCODER_SETTINGS.__class__(**{**trained.ENCODER_SETTINGS.__dict__, "steps": 1})
    )
    assert other != trained.content_key("xlmr", trained.ENCODER_SETTINGS)
    gemma = trained.GEMMA_SETTINGS
    assert trained.content_key("gemma", replace(gemma, seed=13)) != trained.content_key("gemma", gemma)
    monkeypatch.setenv("RERANKER_TINY_CACHE", str(tmp_path))
    assert trained.cache_root() == tmp_path


def test_gemma_yes_logit_is_the_tied_lm_head_row(tmp_path):
    # The Gemma fixture trains on hidden[:, -1] . embed[yes] instead of the full vocabulary
    # projection: it must be the very logit FlagLLMReranker scores.
    from transformers import GemmaForCausalLM

    model = GemmaForCausalLM.from_pretrained(str(build_gemma_reranker(tmp_path, seed=3))).eval()
    ids = torch.from_numpy(np.random.default_rng(0).integers(4, model.config.vocab_size, (5, 12)))
    mask = torch.ones_like(ids)
    mask[:2, :4] = 0  # left padding
    ids[:2, :4] = 0
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).logits[:, -1, 200]
        hidden, yes_row = trained.gemma_hidden_and_yes_row(model, ids, mask, 200)
        fast = hidden[:, -1] @ yes_row
    torch.testing.assert_close(fast, full, rtol=1e-5, atol=1e-5)
    assert full.std() > 0.1  # different rows, different scores


def test_learning_rate_warms_up_then_decays_to_zero():
    s = trained.TrainingSettings(
        seed=0, steps=100, batch_size=1, learning_rate=1.0, init_std=0.1, warmup_steps=10
    )
    factors = [trained.learning_rate_factor(s, step) for step in range(s.steps + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[9:], factors[10:], strict=False))
    assert factors[-1] == pytest.approx(0.0, abs=1e-9)
    assert trained.learning_rate_factor(trained.ENCODER_SETTINGS, 1234) == 1.0  # no warm-up: constant


def test_gemma_key_heads_start_as_copies_of_query_heads(tmp_path):
    from transformers import GemmaForCausalLM

    model = GemmaForCausalLM.from_pretrained(str(build_gemma_reranker(tmp_path, seed=3)))
    trained._align_query_keys(model)
    d, heads, kv = model.config.head_dim, model.config.num_attention_heads, model.config.num_key_value_heads
    group = heads // kv
    assert group > 1  # grouped-query attention: key head j serves query heads j*group ..
    for layer in model.model.layers:
        q, k = layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight
        for j in range(kv):
            assert torch.equal(k[j * d : (j + 1) * d], q[j * group * d : (j * group + 1) * d])
        assert not torch.equal(k[:d], q[d : 2 * d])  # the other query heads keep their own draws
