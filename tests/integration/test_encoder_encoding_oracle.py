"""Client-side token ids for encoder rerankers equal FlagEmbedding's (run as the oracle)."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from export.tiny.encoder import build_xlmr_reranker
from reranker_core.encoding.encoder import encode_encoder_pairs
from reranker_core.options import parse_options
from tests.support.oracle import run_oracle
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs

PAIRS = TUTORIAL_PAIRS + MULTILINGUAL_PAIRS + many_pairs(20)
LENGTHS = [(512, None), (16, None), (24, 6), (10, 2), (7, 5)]


@pytest.fixture(scope="module")
def encoder_case(tmp_path_factory):
    from export.encoder_export import EncoderExportOptions, encoder_manifest
    from export.tokenizer_files import copy_tokenizer

    ckpt = build_xlmr_reranker(tmp_path_factory.mktemp("xlmr"), seed=3)
    model_dir = tmp_path_factory.mktemp("model")
    info = copy_tokenizer(ckpt, model_dir, str(ckpt))
    manifest = encoder_manifest(ckpt, "t", str(ckpt), info, EncoderExportOptions())
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer" / "tokenizer.json"))
    jobs = [
        {
            "kind": "encoder",
            "model": str(ckpt),
            "pairs": PAIRS,
            "tokenize": True,
            "score": {"max_length": m, **({"query_max_length": q} if q else {})},
        }
        for m, q in LENGTHS
    ]
    return manifest, tokenizer, run_oracle(jobs)


@pytest.mark.parametrize("case", range(len(LENGTHS)), ids=[f"max{m}-q{q}" for m, q in LENGTHS])
def test_token_ids_equal_flagembedding(encoder_case, case):
    manifest, tokenizer, oracle = encoder_case
    max_length, qmax = LENGTHS[case]
    expected = oracle[case]["input_ids"]
    # The product's own defaults (query_max_length when not given), as every caller gets them.
    options = parse_options({"max_length": max_length, "query_max_length": qmax}, manifest)
    got = encode_encoder_pairs(
        tokenizer,
        manifest,
        [tuple(p) for p in PAIRS],
        max_length=options.max_length,
        query_max_length=options.query_max_length,
    )
    assert [list(e.input_ids) for e in got] == expected


def test_truncation_keeps_budget_unless_overflow_exceeds_passage(encoder_case):
    manifest, tokenizer, _ = encoder_case
    long_pair = ("panda " * 20, "bamboo " * 40)
    (cut,) = encode_encoder_pairs(tokenizer, manifest, [long_pair], max_length=30, query_max_length=20)
    assert len(cut.input_ids) == 30
    # Overflow not smaller than the passage: HF cuts nothing, so neither do we.
    (kept,) = encode_encoder_pairs(
        tokenizer, manifest, [("panda " * 20, "hi")], max_length=10, query_max_length=20
    )
    assert len(kept.input_ids) > 10
