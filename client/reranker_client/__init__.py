"""Client SDK for the BGE rerankers served by Triton (gRPC/HTTP, sync and asyncio)."""
from reranker_client.client import RerankerClient, RerankResult
from reranker_client.errors import (InferenceError, InvalidInputError, ModelNotReadyError, RerankerError,
                                    ServerUnavailableError, TokenizerMismatchError)

__all__ = ["RerankerClient", "RerankResult", "AsyncRerankerClient", "RerankerError", "InvalidInputError",
           "ServerUnavailableError", "ModelNotReadyError", "TokenizerMismatchError", "InferenceError"]


def __getattr__(name: str):
    if name == "AsyncRerankerClient":
        from reranker_client.aio import AsyncRerankerClient
        return AsyncRerankerClient
    raise AttributeError(name)
