"""Tell which reranker family a checkpoint belongs to from its config.json."""

from __future__ import annotations

from typing import Any

from export.errors import ExportError
from reranker_core.families import ENCODER

ENCODER_ARCHITECTURES = {"XLMRobertaForSequenceClassification"}


def detect_family(config: dict[str, Any]) -> str:
    """The manifest family name, or ExportError naming what is supported."""
    archs = set(config.get("architectures") or [])
    if archs & ENCODER_ARCHITECTURES or (config.get("model_type") == "xlm-roberta" and not archs):
        if config.get("num_labels", len(config.get("id2label") or {"0": 0})) not in (1, None):
            raise ExportError("XLM-RoBERTa checkpoint with num_labels != 1 is not a BGE reranker")
        return ENCODER
    from export.llm_export import detect_llm_family

    family = detect_llm_family(config)
    if family is None:
        name = ", ".join(sorted(archs)) or config.get("model_type") or "unknown"
        raise ExportError(
            f"unsupported architecture {name}: supported are XLM-RoBERTa "
            "sequence classification (bge-reranker-base/large/v2-m3), Gemma "
            "(v2-gemma), MiniCPM layerwise and Gemma2 lightweight rerankers"
        )
    return family
