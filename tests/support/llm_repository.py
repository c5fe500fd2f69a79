"""Tiny LLM-reranker test models served next to the encoder ones (see repository.py)."""

from __future__ import annotations

from export.tiny.decoders import (
    build_gemma2_lightweight_reranker,
    build_gemma_reranker,
    build_minicpm_layerwise_reranker,
)
from tests.support.repository import TestModel

LLM_MODELS = [
    TestModel("tiny-gemma", "llm", lambda d: build_gemma_reranker(d, seed=11)),
    TestModel("tiny-layerwise", "layerwise", lambda d: build_minicpm_layerwise_reranker(d, seed=12)),
    TestModel("tiny-lightweight", "lightweight", lambda d: build_gemma2_lightweight_reranker(d, seed=13)),
]
