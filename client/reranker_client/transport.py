"""Thin synchronous wrappers over tritonclient's gRPC and HTTP clients.

They turn connection failures and server errors into the client's exception types and send many
requests concurrently (gRPC: a thread pool; HTTP: tritonclient's async_infer)."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

import numpy as np

from reranker_core.packing import RequestBatch
from reranker_client.errors import (InferenceError, ModelNotReadyError, RerankerError,
                                    ServerUnavailableError)
from reranker_client.retry import RetryPolicy

OUTPUT_NAME = "scores"


def request_inputs(module: Any, batch: RequestBatch) -> list:
    """tritonclient InferInput objects for one request."""
    tensors = [("input_ids", batch.input_ids), ("attention_mask", batch.attention_mask)]
    if batch.segment_lengths is not None:
        tensors.append(("segment_lengths", batch.segment_lengths))
    inputs = []
    for name, array in tensors:
        tensor = module.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def manifest_json_from_config(config: dict[str, Any]) -> Optional[str]:
    param = (config.get("parameters") or {}).get("reranker_manifest")
    return param.get("string_value") if isinstance(param, dict) else None


def map_exception(exc: Exception, url: str, model: str) -> RerankerError:
    """The client's exception for a tritonclient / socket error."""
    from tritonclient.utils import InferenceServerException
    if isinstance(exc, RerankerError):
        return exc
    if isinstance(exc, InferenceServerException):
        status = (exc.status() or "").upper()
        message = exc.message() or str(exc)
        if "UNAVAILABLE" in status or "failed to connect" in message.lower():
            return ServerUnavailableError(f"Triton server at {url} is unreachable: {message}")
        if "stub process" in message.lower() and "not healthy" in message.lower():
            # The model's Python-backend process died; Triton 2.51 does not restart it by itself.
            return ServerUnavailableError(f"model {model!r} on {url} is unavailable: its backend process "
                                          f"crashed and must be reloaded or the server restarted ({message})")
        if "DEADLINE" in status or "timed out" in message.lower() or "timeout" in message.lower():
            return InferenceError(f"request to {model} timed out: {message}")
        if "NOT_FOUND" in status or "unknown model" in message.lower() or "not found" in message.lower():
            return ModelNotReadyError(f"model {model!r} not found on {url}: {message}")
        return InferenceError(f"server error from {model}: {message}")
    if isinstance(exc, (ConnectionError, OSError)) or type(exc).__name__ == "HTTPConnectionClosed":
        # HTTPConnectionClosed (geventhttpclient): the server went away mid-request (killed/restarted).
        return ServerUnavailableError(f"Triton server at {url} is unreachable: {type(exc).__name__}: {exc}")
    return InferenceError(f"request to {model} failed: {type(exc).__name__}: {exc}")


class Transport:
    """Common interface of the gRPC and HTTP transports."""

    def __init__(self, url: str, *, timeout_s: Optional[float], concurrency: int,
                 headers: Optional[dict[str, str]] = None, retry: Optional[RetryPolicy] = None) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.headers = headers or {}
        self.retry = retry or RetryPolicy()

    def attempt_timeout(self, remaining: Optional[float]) -> Optional[float]:
        """The client timeout of one attempt: timeout_s, cut to what is left of the retry deadline."""
        if remaining is None:
            return self.timeout_s
        return remaining if self.timeout_s is None else min(self.timeout_s, remaining)

    def model_config(self, model: str) -> dict[str, Any]:
        """The model's config after checking that server and model are ready."""
        try:
            if not self._client.is_server_live(headers=self.headers):
                raise ServerUnavailableError(f"Triton server at {self.url} is not live")
            if not self._client.is_model_ready(model, headers=self.headers):
                state = self._index_state(model)
                if state is not None:   # known to the server: loading, reloading or failed to load
                    raise ModelNotReadyError(f"model {model!r} on {self.url} has no available versions "
                                             f"right now (state {state})")
                raise ModelNotReadyError(f"model {model!r} is not ready on {self.url} "
                                         "(not found, still loading or failed to load)")
            return self._config(model)
        except Exception as exc:
            raise map_exception(exc, self.url, model) from exc

    def _index_state(self, model: str) -> Optional[str]:
        """The model's state and reason in the server's repository index; None when it is not
        listed or the index cannot be read (restricted API)."""
        try:
            index = self._client.get_model_repository_index(headers=self.headers)
        except Exception:
            return None
        if isinstance(index, dict):          # gRPC with as_json=False gives a protobuf; see below
            index = index.get("models", [])
        elif not isinstance(index, list):
            index = [{"name": m.name, "state": m.state, "reason": m.reason} for m in index.models]
        for entry in index:
            if entry.get("name") == model:
                return f"{entry.get('state') or 'UNKNOWN'}: {entry.get('reason') or 'no reason given'}"
        return None

    def infer_many(self, model: str, batches: Sequence[RequestBatch],
                   parameters: Optional[dict[str, Any]] = None) -> list[np.ndarray]:
        """All batches' outputs, or one error: the whole (idempotent) call is retried under
        self.retry, so a caller never gets partial results."""
        return self.retry.call(lambda remaining: self._infer_many_once(model, batches, parameters, remaining))

    def _infer_many_once(self, model: str, batches: Sequence[RequestBatch],
                         parameters: Optional[dict[str, Any]], remaining: Optional[float]) -> list[np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        self._client.close()


class GrpcTransport(Transport):
    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        import tritonclient.grpc as grpcclient
        self._module = grpcclient
        self._client = grpcclient.InferenceServerClient(url=url)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="reranker-grpc")

    def _config(self, model: str) -> dict[str, Any]:
        return self._client.get_model_config(model, headers=self.headers, as_json=True)["config"]

    def _infer(self, model: str, batch: RequestBatch, parameters: Optional[dict[str, Any]],
               timeout: Optional[float] = None) -> np.ndarray:
        try:
            result = self._client.infer(
                model, request_inputs(self._module, batch),
                outputs=[self._module.InferRequestedOutput(OUTPUT_NAME)], parameters=parameters,
                headers=self.headers, client_timeout=timeout)
        except Exception as exc:
            raise map_exception(exc, self.url, model) from exc
        return result.as_numpy(OUTPUT_NAME)

    def _infer_many_once(self, model, batches, parameters, remaining):
        timeout = self.attempt_timeout(remaining)
        if len(batches) == 1:
            return [self._infer(model, batches[0], parameters, timeout)]
        futures = [self._pool.submit(self._infer, model, b, parameters, timeout) for b in batches]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        super().close()


class HttpTransport(Transport):
    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        import tritonclient.http as httpclient
        self._module = httpclient
        timeout = self.timeout_s if self.timeout_s is not None else 600.0
        self._client = httpclient.InferenceServerClient(
            url=url, concurrency=self.concurrency, connection_timeout=min(timeout, 60.0),
            network_timeout=timeout)

    def _config(self, model: str) -> dict[str, Any]:
        return self._client.get_model_config(model, headers=self.headers)

    def _infer_many_once(self, model, batches, parameters, remaining):
        outputs = [self._module.InferRequestedOutput(OUTPUT_NAME, binary_data=True)]
        try:
            pending = [self._client.async_infer(model, request_inputs(self._module, b), outputs=outputs,
                                                parameters=parameters, headers=self.headers)
                       for b in batches]
            return [p.get_result().as_numpy(OUTPUT_NAME) for p in pending]
        except Exception as exc:
            raise map_exception(exc, self.url, model) from exc


def make_transport(url: str, protocol: str, **kwargs: Any) -> Transport:
    if protocol == "grpc":
        return GrpcTransport(url, **kwargs)
    if protocol == "http":
        return HttpTransport(url, **kwargs)
    from reranker_client.errors import InvalidInputError
    raise InvalidInputError(f"protocol must be 'grpc' or 'http', got {protocol!r}")


def encode_parameters(values: dict[str, Any]) -> dict[str, Any]:
    """Request parameters as Triton carries them: lists as JSON strings, scalars as they are."""
    return {k: json.dumps(v) if isinstance(v, (list, tuple)) else v for k, v in values.items() if v is not None}
