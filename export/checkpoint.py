"""Find a checkpoint: a local directory, or a Hugging Face hub id downloaded to the local cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from export.errors import ExportError
from reranker_core.manifest import looks_like_hub_id

HUB_FILES = [
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "sentencepiece.bpe.model",
    "tokenizer.model",
]  # never checkpoint code: it is not run


def resolve_checkpoint(model: str, *, cache_dir: str | None = None) -> Path:
    """A local directory holding config.json: `model` itself, or its hub snapshot."""
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ExportError(f"{path} has no config.json: not a Hugging Face checkpoint directory")
        return path.resolve()
    if not looks_like_hub_id(model):
        raise ExportError(f"checkpoint not found: {model} is neither a directory nor a hub id (org/name)")
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id=model, allow_patterns=HUB_FILES, cache_dir=cache_dir)
    except Exception as exc:  # network errors, missing repo, offline mode: all one line for the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"cannot download {model} from the Hugging Face hub "
            f"(unreachable or unknown model): {reason[:200]}"
        ) from exc
    return Path(local)


def read_config(checkpoint: Path) -> dict[str, Any]:
    try:
        return json.loads((checkpoint / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ExportError(f"cannot read {checkpoint / 'config.json'}: {exc}") from exc


def require_safetensors(checkpoint: Path, allow_pickle: bool = False) -> None:
    """Refuse checkpoints that only ship pickle weights, unless explicitly allowed."""
    if any(checkpoint.glob("*.safetensors")):
        return
    if any(checkpoint.glob("*.bin")) and not allow_pickle:
        raise ExportError(
            f"{checkpoint} has only pickle (*.bin) weights; convert them to safetensors "
            "or pass --allow-pickle if you trust the file"
        )
    if not any(checkpoint.glob("*.bin")):
        raise ExportError(f"{checkpoint} has no weights (*.safetensors)")
