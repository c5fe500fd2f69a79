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
from typing import Any

from reranker_core.families import FAMILIES, family_spec
from reranker_core.files import CHECKPOINT_SUBDIR, MANIFEST_FILE, TOKENIZER_FILE
from reranker_core.limits import DEFAULT_MAX_LENGTH, ENCODER_MAX_BATCH_SIZE

FORMAT_VERSION = 1


def looks_like_hub_id(model: str) -> bool:
    """`org/name` as the Hugging Face hub spells a model, not a filesystem path (export records
    a local checkpoint by its absolute path)."""
    return "/" in model and not model.startswith(("/", ".", "~")) and model.count("/") == 1


@dataclass
class TokenizerInfo:
    """Which tokenizer the model was exported with and the special ids the encoding needs."""

    sha256: str  # of tokenizer.json's bytes
    file: str = TOKENIZER_FILE  # relative to the model directory
    source: str = ""  # hub id or local directory it came from
    padding_side: str = "right"
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | None = None
    cls_token_id: int | None = None
    sep_token_id: int | None = None
    unk_token_id: int | None = None


@dataclass
class LLMSettings:
    """What the decoder (LLM) families' encoding and server read, written by export."""

    checkpoint_dir: str = CHECKPOINT_SUBDIR  # config.json + safetensors, relative to the model directory
    dtype: str = "float32"  # float32 | float16 | bfloat16 (compute dtype of this config)
    default_prompt: str = ""
    query_instruction: str | None = "A: "  # FlagEmbedding's LLM reranker defaults
    query_instruction_format: str = "{}{}"
    passage_instruction: str | None = "B: "
    passage_instruction_format: str = "{}{}"
    truncation_side: str = "right"
    yes_token_id: int | None = None  # gemma: the vocabulary row whose logit is the score
    num_hidden_layers: int = 0
    cutoff_layers: list[int] = field(default_factory=list)  # layers that can score
    default_cutoff_layers: list[int] = field(default_factory=list)
    compress_ratios: list[int] = field(default_factory=lambda: [1])
    default_compress_ratio: int = 1
    default_compress_layers: list[int] = field(default_factory=list)
    allow_pickle: bool = False  # load pytorch_model.bin checkpoints
    max_batch_tokens: int | None = None  # padded tokens per forward pass (config parameter wins)
    intra_op_threads: int = 0  # torch CPU threads (0: torch's default)

    @classmethod
    def for_family(cls, family: str, **values: Any) -> LLMSettings:
        """FlagEmbedding's defaults for `family`, overridden by `values`."""
        return cls(**{"default_prompt": family_spec(family).default_prompt or "", **values})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LLMSettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class ModelManifest:
    family: str
    name: str
    tokenizer: TokenizerInfo
    max_positions: int  # longest token sequence the model can take
    default_max_length: int = DEFAULT_MAX_LENGTH
    max_batch_size: int = ENCODER_MAX_BATCH_SIZE  # pairs per request the server accepts
    vocab_size: int = 0
    precision: str = "fp32"
    source: str = ""  # checkpoint hub id or directory
    format_version: int = FORMAT_VERSION
    llm: LLMSettings | None = None  # decoder families only
    # The two models of one export: `<name>` takes token ids, `<name>-text` takes text. The token
    # model's manifest names its text model; the text model's names the token model it calls.
    text_model: str = ""
    token_model: str = ""

    @property
    def pad_id(self) -> int:
        """The id padding positions carry (masked out, so any id in the vocabulary works)."""
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None and (not self.vocab_size or 0 <= pad < self.vocab_size) else 0

    @property
    def hub_id(self) -> str:
        """The hub id the model was exported from; "" for a local checkpoint."""
        return self.source if looks_like_hub_id(self.source) else ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        data = dict(data)
        if data.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(
                f"manifest format {data['format_version']} is newer than this client "
                f"supports ({FORMAT_VERSION}); upgrade reranker-core"
            )
        tok_fields = {f.name for f in fields(TokenizerInfo)}
        data["tokenizer"] = TokenizerInfo(**{k: v for k, v in data["tokenizer"].items() if k in tok_fields})
        data["llm"] = LLMSettings.from_dict(data["llm"]) if data.get("llm") else None
        known = {f.name for f in fields(cls)}
        manifest = cls(**{k: v for k, v in data.items() if k in known})
        if manifest.family not in FAMILIES:
            raise ValueError(f"unknown model family {manifest.family!r}; known: {', '.join(FAMILIES)}")
        return manifest

    @classmethod
    def from_json(cls, text: str) -> ModelManifest:
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, model_dir: Path | str) -> ModelManifest:
        return cls.from_json((Path(model_dir) / MANIFEST_FILE).read_text())

    def save(self, model_dir: Path | str) -> Path:
        path = Path(model_dir) / MANIFEST_FILE
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path


def file_sha256(path: Path | str) -> str:
    """Fingerprint of a tokenizer file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
