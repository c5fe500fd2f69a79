"""Copy the tokenizer next to the served model and describe it for the manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from export.errors import ExportError
from reranker_core.files import TOKENIZER_FILE
from reranker_core.manifest import TokenizerInfo, file_sha256

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def _token_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("content")
    return value


def _ensure_tokenizer_json(checkpoint: Path, out: Path) -> None:
    src = checkpoint / "tokenizer.json"
    if src.is_file():
        shutil.copyfile(src, out / "tokenizer.json")
        return
    # Only a slow (sentencepiece) tokenizer: let transformers build the fast one once, at export.
    try:
        from transformers import AutoTokenizer

        fast = AutoTokenizer.from_pretrained(str(checkpoint), use_fast=True)
        fast.backend_tokenizer.save(str(out / "tokenizer.json"))
    except Exception as exc:
        raise ExportError(f"{checkpoint} has no tokenizer.json and no convertible tokenizer: {exc}") from exc


def copy_tokenizer(checkpoint: Path, model_dir: Path, source: str) -> TokenizerInfo:
    """Copy tokenizer files into <model_dir>/tokenizer/ and return their TokenizerInfo."""
    out = model_dir / "tokenizer"
    out.mkdir(parents=True, exist_ok=True)
    _ensure_tokenizer_json(checkpoint, out)
    for name in TOKENIZER_FILES[1:]:
        if (checkpoint / name).is_file():
            shutil.copyfile(checkpoint / name, out / name)
    config: dict[str, Any] = {}
    # special_tokens_map.json wins over tokenizer_config.json, as in transformers' loading.
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        if (out / name).is_file():
            config.update(json.loads((out / name).read_text()))
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))

    def token_id(key: str) -> int | None:
        text = _token_text(config.get(key))
        return tok.token_to_id(text) if text else None

    return TokenizerInfo(
        sha256=file_sha256(out / "tokenizer.json"),
        file=TOKENIZER_FILE,
        source=source,
        padding_side=config.get("padding_side", "right"),
        pad_token_id=token_id("pad_token"),
        bos_token_id=token_id("bos_token"),
        eos_token_id=token_id("eos_token"),
        cls_token_id=token_id("cls_token"),
        sep_token_id=token_id("sep_token"),
        unk_token_id=token_id("unk_token"),
    )
