"""The decoder-reranker encoding gives exactly the token ids FlagEmbedding 1.4.2 feeds its model.

The tiny checkpoints are exported with export/llm_export.py, so the manifest the encoding reads is
the one a client gets from the server; FlagEmbedding (the oracle) runs once for the whole module.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from export.llm_export import export_llm
from export.tiny.decoders import (
    build_gemma2_lightweight_reranker,
    build_gemma_reranker,
    build_minicpm_layerwise_reranker,
)
from reranker_core.encoding.decoder import DecoderEncoder, adds_bos, encode_decoder_pair, encode_decoder_pairs
from reranker_core.families import GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE
from reranker_core.manifest import ModelManifest
from tests.support.oracle import run_oracle

PAIRS = [
    ["what is panda?", "hi"],
    [
        "what is panda?",
        "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or "
        "simply panda, is a bear species endemic to China.",
    ],
    ["大熊猫是什么？", "大熊猫是中国特有的熊科动物，主要栖息在四川、陕西和甘肃的山区。🐼🎋"],
    ["naïve café?", "Les élèves étudient à l'école; crème brûlée, Ångström, señor 👍🏽 Zürich"],
    ["Emoji 😀 ©®™", "line one\nline two\n\nA: query\nB: passage Ωmega ≈ ∑"],
    ["", ""],
    ["q", "x"],
    ["what is the capital of France? " * 4, "Paris is the capital and most populous city of France. " * 8],
]
CUSTOM_PROMPT = "Custom prompt: does B answer A? Yes or No. 中文 é"
# compute_score keyword arguments; max_length 4 with query_max_length 20 makes the overflow at least
# the second part, where HF cuts nothing.
VARIANTS = {
    "default": {},
    "custom_prompt": {"prompt": CUSTOM_PROMPT},
    "short": {"max_length": 10, "query_max_length": 4},
    "tiny": {"max_length": 3},
    "cut": {"prompt": "", "max_length": 6},
    "nothing_cut": {"max_length": 4, "query_max_length": 20, "prompt": ""},
}
# label -> (family, oracle kind, builder, tokenizer overrides)
CHECKPOINTS = {
    "gemma": (GEMMA, "llm", build_gemma_reranker, {}),
    "gemma_bos_is_pad": (GEMMA, "llm", build_gemma_reranker, {"bos_token": "<pad>"}),
    "gemma_left_truncation": (GEMMA, "llm", build_gemma_reranker, {"truncation_side": "left"}),
    "layerwise": (MINICPM_LAYERWISE, "layerwise", build_minicpm_layerwise_reranker, {}),
    "lightweight": (GEMMA2_LIGHTWEIGHT, "lightweight", build_gemma2_lightweight_reranker, {}),
}
# (label, variant) pairs run against the oracle (the tokenizer variants only where they matter)
CASES = [(label, variant) for label in ("gemma", "layerwise", "lightweight") for variant in VARIANTS]
CASES += [("gemma_bos_is_pad", v) for v in ("default", "cut")]
CASES += [("gemma_left_truncation", v) for v in ("short", "cut")]
# FlagEmbedding's instruction arguments (a literal backslash-n in the format means a newline)
CUSTOM_INSTRUCTIONS = {
    "query_instruction_for_rerank": "Query:",
    "query_instruction_format": "{}\\n{}",
    "passage_instruction_for_rerank": "Doc:",
    "passage_instruction_format": "<{}>{}",
}

NO_INSTRUCTIONS = {"query_instruction_for_rerank": None, "passage_instruction_for_rerank": None}


def _override_tokenizer(ckpt: Path, overrides: dict) -> None:
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = ckpt / name
        data = json.loads(path.read_text())
        data.update(
            {k: v for k, v in overrides.items() if name == "tokenizer_config.json" or k.endswith("_token")}
        )
        path.write_text(json.dumps(data, indent=2))


def _with_custom_instructions(manifest: ModelManifest) -> ModelManifest:
    return replace(
        manifest,
        llm=replace(
            manifest.llm,
            query_instruction="Query:",
            query_instruction_format="{}\\n{}",
            passage_instruction="Doc:",
            passage_instruction_format="<{}>{}",
        ),
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """label -> (tokenizer, manifest, oracle kind, checkpoint dir), exported like production."""
    root = tmp_path_factory.mktemp("decoder_encoding")
    out = {}
    for label, (family, kind, build, overrides) in CHECKPOINTS.items():
        ckpt = build(root / f"ckpt_{label}")
        if overrides:
            _override_tokenizer(ckpt, overrides)
        manifest = export_llm(
            ckpt,
            root / "repo" / label,
            name=label,
            family=family,
            dtype="float32",
            max_batch_size=8,
            source=label,
        )
        tokenizer = Tokenizer.from_file(str(root / "repo" / label / "tokenizer" / "tokenizer.json"))
        out[label] = (tokenizer, manifest, kind, ckpt)
    return out


@pytest.fixture(scope="module")
def oracle(models) -> dict:
    """(label, variant) -> FlagEmbedding's result with the token ids; one oracle process."""
    keys, jobs = [], []
    for label, variant in CASES:
        _, _, kind, ckpt = models[label]
        keys.append((label, variant))
        jobs.append(
            {"kind": kind, "model": str(ckpt), "pairs": PAIRS, "score": VARIANTS[variant], "tokenize": True}
        )
    keys.append(("gemma", "custom_instructions"))
    jobs.append(
        {
            "kind": "llm",
            "model": str(models["gemma"][3]),
            "pairs": PAIRS,
            "init": CUSTOM_INSTRUCTIONS,
            "score": {"max_length": 16},
            "tokenize": True,
        }
    )
    keys.append(("layerwise", "no_instructions"))
    jobs.append(
        {
            "kind": "layerwise",
            "model": str(models["layerwise"][3]),
            "pairs": PAIRS,
            "init": NO_INSTRUCTIONS,
            "score": {"max_length": 16},
            "tokenize": True,
        }
    )
    results = run_oracle(jobs)
    for key, result in zip(keys, results):
        assert "error" not in result, f"oracle failed for {key}: {result['error']}"
    return dict(zip(keys, results))


def _encode(models, label: str, score: dict, manifest: ModelManifest | None = None):
    tokenizer, exported, _, _ = models[label]
    return encode_decoder_pairs(
        tokenizer,
        manifest or exported,
        [tuple(p) for p in PAIRS],
        max_length=score.get("max_length", 512),
        query_max_length=score.get("query_max_length"),
        prompt=score.get("prompt"),
    )


@pytest.mark.parametrize("label, variant", CASES)
def test_ids_equal_flagembedding(models, oracle, label, variant):
    expected = oracle[(label, variant)]
    encoded = _encode(models, label, VARIANTS[variant])
    assert [list(e.input_ids) for e in encoded] == expected["input_ids"]
    if models[label][1].family == GEMMA2_LIGHTWEIGHT:
        assert [e.query_length for e in encoded] == expected["query_lengths"]
        assert [e.prompt_length for e in encoded] == expected["prompt_lengths"]
    else:
        assert all(e.query_length == 0 and e.prompt_length == 0 for e in encoded)


def test_custom_instructions_equal_flagembedding(models, oracle):
    manifest = _with_custom_instructions(models["gemma"][1])
    encoded = _encode(models, "gemma", {"max_length": 16}, manifest)
    assert [list(e.input_ids) for e in encoded] == oracle[("gemma", "custom_instructions")]["input_ids"]


def test_no_instructions_equal_flagembedding(models, oracle):
    manifest = models["layerwise"][1]
    manifest = replace(manifest, llm=replace(manifest.llm, query_instruction=None, passage_instruction=None))
    encoded = _encode(models, "layerwise", {"max_length": 16}, manifest)
    assert [list(e.input_ids) for e in encoded] == oracle[("layerwise", "no_instructions")]["input_ids"]


def test_cases_reach_every_branch(models, oracle):
    """Guards the parity tests: bos present and absent, the pair truncation cutting and not."""
    bos = models["gemma"][1].tokenizer.bos_token_id
    assert oracle[("gemma", "default")]["input_ids"][0][0] == bos
    assert oracle[("gemma_bos_is_pad", "default")]["input_ids"][0][0] != bos
    for label in {label for label, variant in CASES if variant == "nothing_cut"}:
        sep = len(models[label][0].encode("\n", add_special_tokens=False).ids)
        cut = oracle[(label, "cut")]["input_ids"]  # prompt "": cut pairs end at max_length + 2 sep
        assert any(len(ids) == 6 + 2 * sep for ids in cut), label
        kept = oracle[(label, "nothing_cut")]["input_ids"]  # overflow >= second part: all kept
        assert any(len(ids) > 4 + 2 * sep + 1 for ids in kept), label
    left, right = oracle[("gemma_left_truncation", "cut")], oracle[("gemma", "cut")]
    assert left["input_ids"] != right["input_ids"]


def test_single_pair_equals_batch(models):
    tokenizer, manifest, _, _ = models["lightweight"]
    batch = encode_decoder_pairs(tokenizer, manifest, [tuple(p) for p in PAIRS], max_length=10)
    for pair, expected in zip(PAIRS, batch):
        assert encode_decoder_pair(tokenizer, manifest, pair[0], pair[1], max_length=10) == expected


def test_prompt_none_is_the_default_and_empty_prompt_is_empty(models):
    tokenizer, manifest, _, _ = models["gemma"]
    default = encode_decoder_pair(tokenizer, manifest, "q", "p", max_length=32)
    explicit = encode_decoder_pair(
        tokenizer, manifest, "q", "p", max_length=32, prompt=manifest.llm.default_prompt
    )
    empty = encode_decoder_pair(tokenizer, manifest, "q", "p", max_length=32, prompt="")
    assert default == explicit
    assert len(empty.input_ids) < len(default.input_ids)


def test_bos_rule_per_family():
    assert adds_bos(GEMMA, 2, 0) and not adds_bos(GEMMA, 0, 0) and not adds_bos(GEMMA, None, 0)
    assert adds_bos(GEMMA, 2, None)
    assert adds_bos(MINICPM_LAYERWISE, 0, 0) and adds_bos(GEMMA2_LIGHTWEIGHT, 0, 0)
    with pytest.raises(ValueError, match="needs a tokenizer with a bos token"):
        adds_bos(GEMMA2_LIGHTWEIGHT, None, 0)


def test_encoder_family_is_refused(models):
    tokenizer, manifest, _, _ = models["gemma"]
    with pytest.raises(ValueError, match="not a decoder reranker family"):
        DecoderEncoder.from_manifest(tokenizer, replace(manifest, family="encoder"))
