"""Random-weight checkpoints of the real reranker shapes, built and cached for the benchmarks.

No real weights can be downloaded here, so the benchmarks time random-weight models of the real
shapes (speed does not depend on the weight values). Every checkpoint is a Hugging Face style
directory that FlagEmbedding (in .venv-oracle) and this project load alike.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from bench.common import CACHE, EncoderShape
from export.onnx_export import export_encoder_onnx as project_export


def build_encoder_checkpoint(
    shape: EncoderShape,
    out_dir: Path | None = None,
    seed: int = 0,
    weight_std: float = 0.02,
    head_gain: float = 50.0,
) -> Path:
    """Write (once) a random-weight XLMRobertaForSequenceClassification of `shape`.

    The tokenizer is the tests' small trained XLM-R style tokenizer (ids < 400): the vocabulary
    only sizes the embedding table, so timing is unaffected. The classification head is scaled so
    scores spread over about one unit, which makes rank agreement between precisions meaningful.
    """
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    from export.tiny.encoder import save_sequence_classifier
    from export.tiny.tokenizer_builder import build_xlmr_tokenizer

    meta = {**asdict(shape), "seed": seed, "weight_std": weight_std, "head_gain": head_gain}
    out_dir = Path(out_dir or CACHE / f"{shape.name}-std{weight_std:g}")
    if (out_dir / "model.safetensors").exists() and (out_dir / "shape.json").exists():
        if json.loads((out_dir / "shape.json").read_text()) == meta:
            return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    build_xlmr_tokenizer(out_dir, model_max_length=shape.max_position_embeddings - 2)
    config = XLMRobertaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=shape.max_position_embeddings,
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
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        # Linear weights ~ N(0, weight_std) (BERT's initializer_range is 0.02; deeper random
        # stacks with wider weights become chaotic, which exaggerates reduced-precision drift),
        # and a head gain so that scores spread over about one unit between passages.
        for name, param in model.named_parameters():
            if name.endswith("weight") and param.dim() == 2 and "embeddings" not in name:
                param.normal_(0.0, weight_std, generator=gen)
        model.classifier.out_proj.weight.mul_(head_gain)
    save_sequence_classifier(model, out_dir)
    (out_dir / "shape.json").write_text(json.dumps(meta))
    return out_dir


def export_encoder_onnx(checkpoint: Path, out_path: Path | None = None) -> Path:
    """Export with the project's exporter (export/onnx_export.py: input_ids/attention_mask INT64
    [batch, seq] -> "scores" FP32 [batch, 1], opset 17), cached beside the checkpoint."""
    checkpoint = Path(checkpoint)
    out_path = Path(out_path or checkpoint / "onnx" / "model.onnx")
    if out_path.exists():
        return out_path
    project_export(checkpoint, out_path, progress=lambda _msg: None)
    return out_path
