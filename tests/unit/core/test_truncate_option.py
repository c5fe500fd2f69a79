"""The text model's `truncate` option (reranker_core): false makes an input that max_length or
query_max_length would cut an error naming the passage, instead of truncating it (what TEI's
truncate=false and NIM's truncate=NONE promise; the rerank API sends it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker_core.errors import InputError
from reranker_core.families import ENCODER
from reranker_core.manifest import ModelManifest
from reranker_core.options import COMMON_OPTIONS, parse_options
from reranker_core.pipeline import prepare_pairs


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    from tokenizers import Tokenizer

    from export.tiny.tokenizer_builder import build_xlmr_tokenizer
    from export.tokenizer_files import copy_tokenizer

    ckpt = build_xlmr_tokenizer(tmp_path_factory.mktemp("tok"))
    model_dir = tmp_path_factory.mktemp("model")
    info = copy_tokenizer(Path(ckpt), model_dir, "trunc")
    tokenizer = Tokenizer.from_file(str(model_dir / info.file))
    manifest = ModelManifest(
        family=ENCODER,
        name="trunc",
        tokenizer=info,
        max_positions=64,
        default_max_length=32,
        vocab_size=tokenizer.get_vocab_size(),
    )
    return tokenizer, manifest


def test_truncate_is_a_common_option_parsed_as_a_bool(encoder):
    _, manifest = encoder
    assert "truncate" in COMMON_OPTIONS
    assert parse_options({}, manifest).truncate is True
    assert parse_options({"truncate": False}, manifest).truncate is False
    assert parse_options({"truncate": "false"}, manifest, from_text=True).truncate is False
    with pytest.raises(InputError, match="truncate must be true or false"):
        parse_options({"truncate": "sometimes"}, manifest)


def test_truncate_false_refuses_only_what_truncation_would_cut(encoder):
    tokenizer, manifest = encoder
    short, long = ("panda", "bear"), ("panda", "the giant panda is a bear " * 20)
    strict = parse_options({"truncate": False}, manifest)
    loose = parse_options({}, manifest)
    assert (
        prepare_pairs(tokenizer, manifest, [short], strict).rows
        == prepare_pairs(tokenizer, manifest, [short], loose).rows
    )
    with pytest.raises(
        InputError,
        match=r"passages\[1\]: the \(query, passage\) pair is \d+ tokens, more than "
        r"max_length 32 .*truncate is false",
    ):
        prepare_pairs(tokenizer, manifest, [short, long], strict)
    assert len(prepare_pairs(tokenizer, manifest, [short, long], loose).rows[1].input_ids) == 32
    long_query = ("what " * 40, "bear")  # the query over query_max_length (24) counts too
    with pytest.raises(InputError, match=r"passages\[0\]"):
        prepare_pairs(tokenizer, manifest, [long_query], strict)
    windows = parse_options({"truncate": False, "long_passages": "max_window"}, manifest)
    assert prepare_pairs(tokenizer, manifest, [long], windows).count == 1  # windows fit: nothing is cut
