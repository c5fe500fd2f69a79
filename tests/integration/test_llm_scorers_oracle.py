"""The plain-torch LLM scorers (server/reranker_server/llm/) give FlagEmbedding 1.4.2's scores.

The token ids come from FlagEmbedding itself (the oracle's "tokenize" capture), so these tests
check the model math only; FlagEmbedding runs once for the whole module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from export.tiny.decoders import (
    build_gemma2_lightweight_reranker,
    build_gemma_reranker,
    build_minicpm_layerwise_reranker,
)
from reranker_server.llm import CheckpointError, load_scorer, repack_right
from reranker_server.llm.gemma2 import compress_passages
from tests.support.oracle import run_oracle

ATOL = 1e-5
LONG = (
    "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply panda, is a bear "
    "species endemic to China. It is characterised by its bold black-and-white coat and rotund body. "
) * 2
PAIRS = [
    ["what is panda?", "hi"],
    ["what is panda?", LONG],
    ["大熊猫是什么？", "大熊猫是中国特有的熊科动物，主要栖息在四川、陕西和甘肃的山区。🐼🎋"],
    ["hi", "Paris is the capital of France."],
    ["Emoji 😀 ©®™", "x"],
    ["what is the capital of France? " * 3, "Paris is the capital and most populous city of France. " * 3],
]

# label -> (family, oracle kind, builder); the score kwargs of every oracle job per label
FAMILIES = {
    "gemma": ("gemma", "llm", build_gemma_reranker),
    "layerwise": ("minicpm_layerwise", "layerwise", build_minicpm_layerwise_reranker),
    "lightweight": ("gemma2_lightweight", "lightweight", build_gemma2_lightweight_reranker),
}
CASES = {
    "gemma": [{}],
    "layerwise": [{}, {"cutoff_layers": [2, 3, 4, 5, 6]}],
    "lightweight": [
        {},
        {"cutoff_layers": [2]},
        {"cutoff_layers": [6]},
        {"cutoff_layers": [2, 4, 8]},
        {"cutoff_layers": [6], "compress_ratio": 2, "compress_layers": [2]},  # before the cutoff
        {"cutoff_layers": [6], "compress_ratio": 2, "compress_layers": [6]},  # at it: no effect
        {"cutoff_layers": [4], "compress_ratio": 4, "compress_layers": [7]},  # after it
        {"cutoff_layers": [8], "compress_ratio": 4, "compress_layers": [1, 5]},  # stacked
        {"cutoff_layers": [2, 6, 8], "compress_ratio": 2, "compress_layers": [3, 4]},  # between cutoffs
        {"cutoff_layers": [8], "compress_ratio": 8, "compress_layers": [2]},  # ratio > short passages
    ],
}


def _key(label: str, score: dict) -> str:
    return label + json.dumps(score, sort_keys=True)


@pytest.fixture(scope="module", autouse=True)
def single_thread(single_torch_thread):
    """One intra-op thread here and in the oracle (tests/conftest.py)."""


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("llm_scorers")
    return {label: build(root / label) for label, (_, _, build) in FAMILIES.items()}


@pytest.fixture(scope="module")
def oracle(checkpoints) -> dict:
    jobs, keys = [], []
    for label, (_, kind, _) in FAMILIES.items():
        for score in CASES[label]:
            keys.append(_key(label, score))
            jobs.append(
                {
                    "kind": kind,
                    "model": str(checkpoints[label]),
                    "pairs": PAIRS,
                    "score": score,
                    "tokenize": score == {},
                }
            )
    results = run_oracle(jobs)
    for key, result in zip(keys, results):
        assert "error" not in result, f"oracle failed for {key}: {result['error']}"
    return dict(zip(keys, results))


@pytest.fixture(scope="module")
def scorers(checkpoints) -> dict:
    return {label: load_scorer(family, checkpoints[label]) for label, (family, _, _) in FAMILIES.items()}


def _batch(rows: list[list[int]], side: str = "right", extra: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(map(len, rows)) + extra
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[i, sl] = torch.tensor(r)
        mask[i, sl] = 1
    return ids, mask


def _inputs(oracle, label: str) -> dict:
    tok = oracle[_key(label, {})]
    ids, mask = _batch(tok["input_ids"])
    out = {"input_ids": ids, "attention_mask": mask}
    if "query_lengths" in tok:
        out["query_lengths"] = torch.tensor(tok["query_lengths"])
        out["prompt_lengths"] = torch.tensor(tok["prompt_lengths"])
    return out


def _expected(result: dict) -> torch.Tensor:
    """FlagEmbedding's scores as [pairs, n_cutoffs] (it returns a flat list for one cutoff)."""
    scores = torch.tensor(result["scores"], dtype=torch.float32)
    return scores[:, None] if scores.dim() == 1 else scores.T


def _case_id(label: str, score: dict) -> str:
    return label + "-" + ("default" if not score else "-".join(f"{k}={v}" for k, v in score.items()))


ALL_CASES = [(label, score) for label in FAMILIES for score in CASES[label]]


@pytest.mark.parametrize("label,score", ALL_CASES, ids=[_case_id(*c) for c in ALL_CASES])
def test_scores_equal_flagembedding(oracle, scorers, label, score):
    expected = _expected(oracle[_key(label, score)])
    got = scorers[label].score(**_inputs(oracle, label), **score)
    assert got.shape == expected.shape
    assert got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=ATOL, rtol=0), (got - expected).abs().max()


@pytest.mark.parametrize("cutoffs", [[2], [3], [5], [6], [3, 4], [2, 4, 6]])
def test_layerwise_cutoff_subsets_equal_flagembedding_columns(oracle, scorers, cutoffs):
    """Layerwise heads are per layer, so any subset equals those columns of the all-layers run."""
    all_layers = _expected(oracle[_key("layerwise", {"cutoff_layers": [2, 3, 4, 5, 6]})])
    got = scorers["layerwise"].score(**_inputs(oracle, "layerwise"), cutoff_layers=cutoffs)
    assert torch.allclose(got, all_layers[:, [c - 2 for c in cutoffs]], atol=ATOL, rtol=0)


def test_lightweight_ratio_one_and_late_compress_layers_change_nothing(oracle, scorers):
    base = _inputs(oracle, "lightweight")
    ref = scorers["lightweight"].score(**base, cutoff_layers=[4, 8])
    for kw in (
        {"compress_ratio": 1, "compress_layers": [2, 4]},
        {"compress_ratio": 2, "compress_layers": [8]},
        {"compress_ratio": 2, "compress_layers": [0]},
        {"compress_ratio": 2, "compress_layers": None},
    ):
        assert torch.equal(scorers["lightweight"].score(**base, cutoff_layers=[4, 8], **kw), ref), kw


@pytest.mark.parametrize("label", list(FAMILIES))
def test_checkpoints_give_clearly_different_scores(oracle, label):
    scores = _expected(oracle[_key(label, {})])[:, 0]
    assert float(scores.max() - scores.min()) > 0.1
    gaps = scores.sort().values.diff()
    assert float(gaps.min()) > 1e-3, scores


@pytest.mark.parametrize("label", list(FAMILIES))
def test_padding_side_amount_and_batch_composition_do_not_change_scores(oracle, scorers, label):
    base = _inputs(oracle, label)
    ref = scorers[label].score(**base, cutoff_layers=None)
    rows = oracle[_key(label, {})]["input_ids"]
    for side, extra in (("left", 0), ("left", 5), ("right", 7)):
        ids, mask = _batch(rows, side, extra)
        got = scorers[label].score(
            ids, mask, query_lengths=base.get("query_lengths"), prompt_lengths=base.get("prompt_lengths")
        )
        assert torch.allclose(got, ref, atol=ATOL, rtol=0), (side, extra)
    for i in range(len(rows)):  # alone vs next to the long pair
        ids, mask = _batch([rows[i]])
        kw = {}
        if "query_lengths" in base:
            kw = {
                "query_lengths": base["query_lengths"][i : i + 1],
                "prompt_lengths": base["prompt_lengths"][i : i + 1],
            }
        assert torch.allclose(scorers[label].score(ids, mask, **kw), ref[i : i + 1], atol=ATOL, rtol=0)


def test_lightweight_compression_is_padding_independent(oracle, scorers):
    base = _inputs(oracle, "lightweight")
    kw = {"cutoff_layers": [4, 8], "compress_ratio": 4, "compress_layers": [2, 6]}
    ref = scorers["lightweight"].score(**base, **kw)
    ids, mask = _batch(oracle[_key("lightweight", {})]["input_ids"], "left", 3)
    got = scorers["lightweight"].score(
        ids, mask, query_lengths=base["query_lengths"], prompt_lengths=base["prompt_lengths"], **kw
    )
    assert torch.allclose(got, ref, atol=ATOL, rtol=0)


def test_non_ascending_cutoffs_are_sorted_and_deduplicated(oracle, scorers):
    base = _inputs(oracle, "layerwise")
    expected = _expected(oracle[_key("layerwise", {"cutoff_layers": [2, 3, 4, 5, 6]})])[:, [0, 2, 4]]
    got = scorers["layerwise"].score(**base, cutoff_layers=[6, 2, 4, 2])
    assert torch.allclose(got, expected, atol=ATOL, rtol=0)


def test_stops_at_deepest_cutoff_and_runs_last_layer_for_scored_position_only(oracle, scorers, monkeypatch):
    scorer = scorers["layerwise"]
    calls = []
    original = scorer.stack.layer

    def spy(idx, h, rope, mask, positions=None):
        out = original(idx, h, rope, mask, positions=positions)
        calls.append((idx, positions is not None, tuple(out.shape)))
        return out

    monkeypatch.setattr(scorer.stack, "layer", spy)
    base = _inputs(oracle, "layerwise")
    scorer.score(**base, cutoff_layers=[3])
    batch = base["input_ids"].shape[0]
    assert [c[0] for c in calls] == [0, 1, 2]
    assert [c[1] for c in calls] == [False, False, True]
    assert calls[-1][2] == (batch, 1, scorer.stack.spec.hidden_size)


def test_gemma_keeps_only_the_yes_row(scorers, checkpoints):
    scorer = scorers["gemma"]
    assert tuple(scorer.yes_row.shape) == (1, scorer.stack.spec.hidden_size)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(checkpoints["gemma"] / "tokenizer.json"))
    assert scorer.yes_token_id == tok.encode("Yes", add_special_tokens=False).ids[0]


@pytest.mark.parametrize(
    "label,bad,message",
    [
        ("layerwise", [1], "allowed: 2..6"),
        ("layerwise", [7], "allowed: 2..6"),
        ("lightweight", [3], "allowed: 2..8 step 2"),
        ("gemma", [2], "allowed: 3"),
    ],
)
def test_unavailable_cutoffs_are_rejected(oracle, scorers, label, bad, message):
    with pytest.raises(ValueError, match=message):
        scorers[label].score(**_inputs(oracle, label), cutoff_layers=bad)


def test_bad_inputs_are_rejected(oracle, scorers):
    base = _inputs(oracle, "lightweight")
    lw = scorers["lightweight"]
    with pytest.raises(ValueError, match="compress_ratio must be one of"):
        lw.score(**base, compress_ratio=3, compress_layers=[2])
    with pytest.raises(ValueError, match="query_lengths and prompt_lengths"):
        lw.score(base["input_ids"], base["attention_mask"], compress_ratio=2, compress_layers=[2])
    with pytest.raises(ValueError, match="must not exceed"):
        lw.score(
            base["input_ids"],
            base["attention_mask"],
            compress_ratio=2,
            compress_layers=[2],
            query_lengths=base["query_lengths"] + 1000,
            prompt_lengths=base["prompt_lengths"],
        )
    with pytest.raises(ValueError, match="do not support compress_ratio"):
        scorers["layerwise"].score(**_inputs(oracle, "layerwise"), compress_ratio=2, compress_layers=[3])
    ids, mask = base["input_ids"].clone(), base["attention_mask"].clone()
    mask[0, 1] = 0
    with pytest.raises(ValueError, match="contiguous"):
        lw.score(ids, mask)
    ids, mask = base["input_ids"].clone(), base["attention_mask"].clone()
    ids[0, 0] = lw.vocab_size
    with pytest.raises(ValueError, match="token ids must be in"):
        lw.score(ids, mask)
    with pytest.raises(ValueError, match="at least one token"):
        lw.score(ids[:, :3], torch.zeros_like(ids[:, :3]))


def test_repack_right_moves_left_padded_rows():
    ids = torch.tensor([[0, 0, 5, 6], [7, 8, 9, 1]])
    mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    packed, lengths = repack_right(ids, mask)
    assert packed.tolist() == [[5, 6, 0, 0], [7, 8, 9, 1]]
    assert lengths.tolist() == [2, 4]


def test_compress_passages_groups_and_short_last_group():
    # row 0: query 2, passage 5, prompt 1; row 1: query 1, passage 1, prompt 2 (shorter than the ratio)
    h = torch.arange(8, dtype=torch.float32)[None, :, None].repeat(2, 1, 1)
    lengths = torch.tensor([8, 4])
    new_h, new_lengths = compress_passages(h, lengths, 2, torch.tensor([2, 1]), torch.tensor([1, 2]))
    assert new_lengths.tolist() == [6, 4]
    assert new_h[0, :, 0].tolist() == [0, 1, 2.5, 4.5, 6, 7]
    assert new_h[1, :, 0].tolist() == [0, 1, 2, 3, 0, 0]


def test_sharded_safetensors_and_pickle_policy(tmp_path, checkpoints, oracle, scorers):
    src = checkpoints["layerwise"]
    sharded = tmp_path / "sharded"
    shutil.copytree(src, sharded)
    state = load_file(str(sharded / "model.safetensors"))
    (sharded / "model.safetensors").unlink()
    names = sorted(state)
    halves = {
        "model-00001-of-00002.safetensors": names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    weight_map = {}
    for shard, keys in halves.items():
        save_file({k: state[k] for k in keys}, str(sharded / shard))
        weight_map.update({k: shard for k in keys})
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    base = _inputs(oracle, "layerwise")
    ref = scorers["layerwise"].score(**base, cutoff_layers=[2, 6])
    got = load_scorer("minicpm_layerwise", sharded).score(**base, cutoff_layers=[2, 6])
    assert torch.equal(got, ref)

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copyfile(src / "config.json", pickled / "config.json")
    torch.save(state, pickled / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        load_scorer("minicpm_layerwise", pickled)
    got = load_scorer("minicpm_layerwise", pickled, allow_pickle=True).score(**base, cutoff_layers=[2, 6])
    assert torch.equal(got, ref)


def test_checkpoint_problems_are_reported(tmp_path, checkpoints):
    with pytest.raises(CheckpointError, match="config.json"):
        load_scorer("gemma", tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(checkpoints["gemma"], broken)
    cfg = json.loads((broken / "config.json").read_text())
    cfg["hidden_size"] = 48
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="does not match the config"):
        load_scorer("gemma", broken)
    with pytest.raises(CheckpointError, match="no LLM scorer"):
        load_scorer("encoder", checkpoints["gemma"])
