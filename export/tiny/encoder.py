"""Tiny deterministic XLM-RoBERTa reranker checkpoints (the encoder family).

The builder writes a Hugging Face style directory (config.json, model.safetensors, tokenizer
files) that FlagEmbedding and this project load like a hub checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from export.tiny.tokenizer_builder import build_xlmr_tokenizer


def _randomize(module: torch.nn.Module, seed: int, std: float = 0.2) -> None:
    """Deterministic weights with enough spread that scores differ clearly between pairs; numpy's
    generator gives the same numbers on every CPU (torch.randn's kernels differ by CPU)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, param in sorted(module.named_parameters()):
            draw = torch.from_numpy(rng.standard_normal(tuple(param.shape)))
            if "LayerNorm.weight" in name or name.endswith("norm.weight"):
                param.copy_(1.0 + 0.1 * draw)
            else:
                param.copy_(std * draw)


def build_xlmr_reranker(
    out_dir: Path,
    *,
    seed: int = 0,
    max_position_embeddings: int = 514,
    hidden_size: int = 32,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    intermediate_size: int = 64,
) -> Path:
    """An XLMRobertaForSequenceClassification reranker (num_labels=1) with the tiny tokenizer.

    `max_position_embeddings` = usable tokens + 2 (RoBERTa's padding_idx offset), as in the real
    models (514 for base/large, 8194 for v2-m3); a small value forces truncation paths.
    """
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    out_dir = Path(out_dir)
    build_xlmr_tokenizer(out_dir, model_max_length=max_position_embeddings - 2)
    from tokenizers import Tokenizer

    vocab_size = Tokenizer.from_file(str(out_dir / "tokenizer.json")).get_vocab_size()
    config = XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=1,
        num_labels=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    config.architectures = ["XLMRobertaForSequenceClassification"]
    torch.manual_seed(seed)
    model = XLMRobertaForSequenceClassification(config).eval()
    _randomize(model, seed)
    return save_sequence_classifier(model, out_dir)


def save_sequence_classifier(model: torch.nn.Module, out_dir: Path) -> Path:
    """Write a one-label sequence classifier as a hub-style checkpoint (safetensors + config.json)
    that transformers 4.47 (the oracle) and 5.x both load."""
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.pop("dtype", None)
    cfg["torch_dtype"] = "float32"
    cfg["id2label"] = {"0": "LABEL_0"}
    cfg["label2id"] = {"LABEL_0": 0}
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return out_dir
