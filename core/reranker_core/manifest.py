"""The model contract written by export and read by the client and the server model code.

Export writes it as `reranker.json` in the model directory and copies it, as a JSON string, into
the model config's `parameters { key: "reranker_manifest" }`, so a client that knows only the
server URL and the model name can learn it from the model config.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from reranker_core.families import ENCODER, FAMILIES, GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE  # noqa: F401
from reranker_core.limits import DEFAULT_MAX_LENGTH, ENCODER_MAX_BATCH_SIZE
from reranker_core.tensors import MANIFEST_PARAMETER  # noqa: F401

MANIFEST_FILE = "reranker.json"
FORMAT_VERSION = 1



@dataclass
class TokenizerInfo:
    """Which tokenizer the model was exported with and the special ids the encoding needs."""
    sha256: str                      # of tokenizer.json's bytes
    file: str = "tokenizer/tokenizer.json"  # relative to the model directory
    source: str = ""                 # hub id or local directory it came from
    padding_side: str = "right"
    pad_token_id: Optional[int] = None
    bos_token_id: Optional[int] = None
    eos_token_id: Optional[int] = None
    cls_token_id: Optional[int] = None
    sep_token_id: Optional[int] = None
    unk_token_id: Optional[int] = None


@dataclass
class ModelManifest:
    family: str
    name: str
    tokenizer: TokenizerInfo
    max_positions: int               # longest token sequence the model can take
    default_max_length: int = DEFAULT_MAX_LENGTH
    max_batch_size: int = ENCODER_MAX_BATCH_SIZE  # pairs per request the server accepts
    vocab_size: int = 0
    precision: str = "fp32"
    source: str = ""                 # checkpoint hub id or directory
    format_version: int = FORMAT_VERSION
    llm: dict[str, Any] = field(default_factory=dict)  # decoder-family details (prompt, layers, ...)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelManifest":
        data = dict(data)
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"manifest format {data['format_version']} is newer than this client "
                             f"supports ({FORMAT_VERSION}); upgrade reranker-core")
        tok_fields = {f.name for f in fields(TokenizerInfo)}
        data["tokenizer"] = TokenizerInfo(**{k: v for k, v in data["tokenizer"].items() if k in tok_fields})
        known = {f.name for f in fields(cls)}
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        if manifest.family not in FAMILIES:
            raise ValueError(f"unknown model family {manifest.family!r}; known: {', '.join(FAMILIES)}")
        return manifest

    @classmethod
    def from_json(cls, text: str) -> "ModelManifest":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, model_dir: Path | str) -> "ModelManifest":
        return cls.from_json((Path(model_dir) / MANIFEST_FILE).read_text())

    def save(self, model_dir: Path | str) -> Path:
        path = Path(model_dir) / MANIFEST_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path


def file_sha256(path: Path | str) -> str:
    """Fingerprint of a tokenizer file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
