"""The tiny test checkpoints (export/tiny/) are the same on every build and every machine.

Two builds in one process compare equal byte for byte; the builders use no trainer or kernel
whose result depends on threads or CPU features (tokenizers' UnigramTrainer, torch.randn).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from export.tiny.decoders import (
    build_gemma2_lightweight_reranker,
    build_gemma_reranker,
    build_minicpm_layerwise_reranker,
)
from export.tiny.encoder import build_xlmr_reranker
from export.tiny.tokenizer_builder import CORPUS, build_decoder_tokenizer, build_xlmr_tokenizer

BUILDERS = {
    "xlmr": build_xlmr_reranker,
    "gemma": build_gemma_reranker,
    "minicpm_layerwise": build_minicpm_layerwise_reranker,
    "gemma2_lightweight": build_gemma2_lightweight_reranker,
}


def _digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()
    }


@pytest.mark.parametrize("name", list(BUILDERS))
def test_two_builds_are_byte_identical(tmp_path, name):
    first, second = BUILDERS[name](tmp_path / "a"), BUILDERS[name](tmp_path / "b")
    digests = _digests(Path(first))
    assert "tokenizer.json" in digests and any(n.endswith(".safetensors") for n in digests)
    assert digests == _digests(Path(second))


@pytest.mark.parametrize("build", [build_xlmr_tokenizer, build_decoder_tokenizer])
def test_tokenizer_knows_every_corpus_character_and_uses_multi_character_pieces(tmp_path, build):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(build(tmp_path) / "tokenizer.json"))
    unk = tok.token_to_id("<unk>")
    encodings = [tok.encode(text, add_special_tokens=False) for text in CORPUS]
    for text, encoding in zip(CORPUS, encodings):
        assert unk not in encoding.ids, text
    assert sum(len(e.ids) for e in encodings) < 0.75 * sum(len(text) for text in CORPUS)
    assert tok.encode("xyzq 🦄", add_special_tokens=False).ids.count(unk) >= 1
