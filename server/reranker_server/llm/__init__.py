"""Plain-torch scorers of the three LLM (decoder) BGE reranker families.

No transformers model classes, no FlagEmbedding, no remote code: each scorer reads config.json
and safetensors weights and computes only what the score needs (layers up to the deepest
requested cutoff, the scored position only in the last layer, a single head row).

    scorer = load_scorer("minicpm_layerwise", checkpoint_dir, dtype="fp32", device="cpu")
    scores = scorer.score(input_ids, attention_mask, cutoff_layers=[4, 6])   # [B, 2]

Cutoff lists are deduplicated and sorted: results come back in ascending layer order
(FlagEmbedding pairs heads with a non-ascending list in the order given, which gives wrong
scores; that quirk is deliberately not reproduced).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reranker_core.families import GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE
from reranker_server.llm.decoder import LLMScorer, repack_right
from reranker_server.llm.gemma import GemmaScorer
from reranker_server.llm.gemma2 import Gemma2LightweightScorer, compress_passages
from reranker_server.llm.minicpm import MiniCPMLayerwiseScorer
from reranker_server.llm.weights import CheckpointError

SCORERS: dict[str, type[LLMScorer]] = {
    GEMMA: GemmaScorer,
    MINICPM_LAYERWISE: MiniCPMLayerwiseScorer,
    GEMMA2_LIGHTWEIGHT: Gemma2LightweightScorer,
}


def load_scorer(family: str, checkpoint_dir: Path | str, **kwargs: Any) -> LLMScorer:
    """The scorer of `family` (a manifest family name) for a checkpoint directory."""
    try:
        cls = SCORERS[family]
    except KeyError:
        raise CheckpointError(f"no LLM scorer for family {family!r}; known: {', '.join(SCORERS)}") from None
    return cls(checkpoint_dir, **kwargs)


__all__ = [
    "CheckpointError",
    "Gemma2LightweightScorer",
    "GemmaScorer",
    "LLMScorer",
    "MiniCPMLayerwiseScorer",
    "SCORERS",
    "compress_passages",
    "load_scorer",
    "repack_right",
]
