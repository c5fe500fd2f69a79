"""Rerank HTTP API (TEI, Cohere v1/v2, NVIDIA NIM) in front of the reranker text models on Triton."""

from reranker_api.app import create_app
from reranker_api.settings import Settings

__all__ = ["create_app", "Settings"]
