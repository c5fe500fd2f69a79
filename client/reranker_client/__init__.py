"""Client SDK for the BGE rerankers served by Triton (gRPC/HTTP, sync and asyncio)."""

from reranker_client.client import RerankerClient, RerankResult
from reranker_client.errors import (
    InferenceError,
    InvalidInputError,
    ModelNotReadyError,
    ModelReloadingError,
    RequestTimeoutError,
    RerankerError,
    ServerUnavailableError,
    TokenizerMismatchError,
)
from reranker_client.retry import RetryPolicy

__all__ = [
    "RerankerClient",
    "RerankResult",
    "AsyncRerankerClient",
    "RetryPolicy",
    "RerankerError",
    "InvalidInputError",
    "ServerUnavailableError",
    "ModelNotReadyError",
    "ModelReloadingError",
    "TokenizerMismatchError",
    "InferenceError",
    "RequestTimeoutError",
]


def __getattr__(name: str):
    if name == "AsyncRerankerClient":
        from reranker_client.aio import AsyncRerankerClient

        return AsyncRerankerClient
    raise AttributeError(name)
