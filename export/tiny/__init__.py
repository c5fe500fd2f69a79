"""Tiny random-weight checkpoints of every reranker family, in the real architectures' layout.

`make demo` uses them when the hub is unreachable, the benchmarks re-dimension them to the real
shapes, and the tests export and serve them next to FlagEmbedding as the oracle. Their scores
are meaningless; their structure (config.json, safetensors keys, tokenizer files) is real.

    from export.tiny import build_tiny
    build_tiny("gemma", Path("ckpt"))       # -> a directory `python -m export --model` accepts
"""

from __future__ import annotations

from pathlib import Path

from reranker_core.families import ENCODER, GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE


def build_tiny(family: str, out_dir: Path, **kwargs) -> Path:
    """Write a tiny checkpoint of `family` into `out_dir` (builder keyword arguments pass through)."""
    from export.tiny import decoders, encoder

    builders = {
        ENCODER: encoder.build_xlmr_reranker,
        GEMMA: decoders.build_gemma_reranker,
        MINICPM_LAYERWISE: decoders.build_minicpm_layerwise_reranker,
        GEMMA2_LIGHTWEIGHT: decoders.build_gemma2_lightweight_reranker,
    }
    if family not in builders:
        raise ValueError(f"no tiny checkpoint for family {family!r}; known: {', '.join(builders)}")
    return builders[family](Path(out_dir), **kwargs)
