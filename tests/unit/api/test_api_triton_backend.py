"""reranker_api.triton without a server: gRPC errors mapped to backend errors, request parameters,
model discovery and aliases, the fallback for text models without the `truncate` option, and the
wire names kept equal to reranker_core's (the API does not depend on it)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from reranker_api import triton
from reranker_api.backend import (
    BackendFailure,
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
    ModelNotFound,
    ScoreOptions,
)
from reranker_api.triton import TritonBackend, classify, request_parameters


def grpc_error(status: str, message: str) -> InferenceServerException:
    return InferenceServerException(msg=message, status=status)


@pytest.mark.parametrize(
    "status, message, kind",
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", BackendUnavailable),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", BackendTimeout),
        ("StatusCode.INTERNAL", "Stub process 'm-text_0_0' is not healthy.", BackendUnavailable),
        (
            "StatusCode.INTERNAL",
            "Failed to process the request(s) for model 'm-text_0_0', message: "
            "Stub process 'm_0_0' is not healthy.",
            BackendUnavailable,
        ),
        (
            "StatusCode.NOT_FOUND",
            "Request for unknown model: 'm-text' has no available versions",
            BackendUnavailable,
        ),
        ("StatusCode.INVALID_ARGUMENT", "passages[2] is empty", InvalidRequest),
        ("StatusCode.INTERNAL", "something broke", BackendFailure),
    ],
)
def test_grpc_errors_map_to_backend_errors(status, message, kind):
    error = classify(grpc_error(status, message), "m", "host:8001")
    assert type(error) is kind
    if kind is InvalidRequest:
        assert error.message == message  # the model's own words reach the caller
    assert classify(ConnectionResetError("reset"), "m", "h").__class__ is BackendUnavailable


def test_request_parameters_send_only_what_differs_from_the_defaults():
    assert request_parameters(ScoreOptions()) == {}
    params = request_parameters(
        ScoreOptions(
            normalize=True,
            truncate=False,
            max_length=64,
            long_passages="max_window",
            llm={"cutoff_layers": [8, 12], "prompt": "p", "compress_ratio": 2},
        )
    )
    assert params == {
        "normalize": True,
        "truncate": False,
        "max_length": 64,
        "long_passages": "max_window",
        "cutoff_layers": "[8, 12]",
        "prompt": "p",
        "compress_ratio": 2,
    }


def test_wire_names_match_reranker_core():
    tensors = pytest.importorskip("reranker_core.tensors")
    assert (triton.QUERY, triton.PASSAGES, triton.SCORES, triton.MANIFEST_PARAMETER) == (
        tensors.QUERY,
        tensors.PASSAGES,
        tensors.SCORES,
        tensors.MANIFEST_PARAMETER,
    )
    assert TritonBackend("x").suffix == tensors.TEXT_MODEL_SUFFIX


class FakeGrpc:
    """Just the tritonclient.grpc.aio calls the backend makes."""

    def __init__(self, models=("enc-text", "enc", "llm-text", "llm"), reject_truncate=False):
        self.models = list(models)
        self.reject_truncate = reject_truncate
        self.infers: list[dict] = []

    async def get_model_repository_index(self, as_json=False, client_timeout=None):
        return {"models": [{"name": n, "state": "READY"} for n in self.models]}

    async def get_model_config(self, name, as_json=False, client_timeout=None):
        manifest = {
            "family": "encoder",
            "source": f"BAAI/{name[:-5]}",
            "max_positions": 514,
            "default_max_length": 512,
        }
        return {"config": {"parameters": {"reranker_manifest": {"string_value": json.dumps(manifest)}}}}

    async def infer(self, model, inputs, outputs=None, parameters=None, client_timeout=None):
        self.infers.append(
            {
                "model": model,
                "parameters": dict(parameters or {}),
                "timeout": client_timeout,
                "shapes": [i.shape() for i in inputs],
            }
        )
        if self.reject_truncate and parameters and "truncate" in parameters:
            raise grpc_error(
                "StatusCode.INVALID_ARGUMENT",
                "unknown option(s) truncate for a encoder model; accepted: max_length, normalize",
            )
        n = inputs[1].shape()[0]

        class Result:
            def as_numpy(self, name):
                return np.arange(n, dtype=np.float32).reshape(1, n)

        return Result()

    async def close(self):
        pass


def backend_with(fake: FakeGrpc, **kwargs) -> TritonBackend:
    backend = TritonBackend("host:8001", **kwargs)
    backend._client = fake
    return backend


def test_discovery_names_aliases_and_unknown_models():
    async def main():
        backend = backend_with(FakeGrpc())
        names = [m.name for m in await backend.models()]
        assert names == ["enc", "llm"]
        for alias in ("enc", "enc-text", "BAAI/enc"):
            assert (await backend.resolve(alias)).name == "enc"
        info = await backend.resolve("enc")
        assert (info.family, info.max_positions, info.default_max_length) == ("encoder", 514, 512)
        with pytest.raises(ModelNotFound, match="'nope' is not served here; served models: enc, llm"):
            await backend.resolve("nope")
        fixed = backend_with(FakeGrpc(), models=("llm-text",))
        assert [m.name for m in await fixed.models()] == ["llm"]

    asyncio.run(main())


def test_score_sends_the_text_model_request():
    async def main():
        fake = FakeGrpc()
        backend = backend_with(fake)
        scores = await backend.score("enc", b"q", [b"a", b"b", b"c"], ScoreOptions(normalize=True), 5.0)
        assert scores.shape == (1, 3)
        (call,) = fake.infers
        assert call == {
            "model": "enc-text",
            "parameters": {"normalize": True},
            "timeout": 5.0,
            "shapes": [[1], [3]],
        }

    asyncio.run(main())


def test_models_without_the_truncate_option_fall_back_to_truncation():
    async def main():
        fake = FakeGrpc(reject_truncate=True)
        backend = backend_with(fake)
        strict = ScoreOptions(truncate=False)
        assert (await backend.score("enc", b"q", [b"a"], strict, None)).shape == (1, 1)
        assert (await backend.score("enc", b"q", [b"a"], strict, None)).shape == (1, 1)
        assert [c["parameters"] for c in fake.infers] == [{"truncate": False}, {}, {}]

    asyncio.run(main())


def test_unreachable_server_is_unavailable_everywhere():
    async def main():
        backend = TritonBackend("127.0.0.1:1")  # nothing listens on port 1
        with pytest.raises(BackendUnavailable):
            await backend.models()
        state = await backend.readiness("enc")
        assert not state.ready and "unreachable" in state.reason
        with pytest.raises(BackendUnavailable):
            await backend.score("enc", b"q", [b"a"], ScoreOptions(), 2.0)
        await backend.close()

    asyncio.run(main())


def test_bytes_input_is_what_tritonclient_serializes():
    import tritonclient.grpc.aio as grpcaio

    from reranker_api.triton import bytes_input

    items = [b"", b"panda", "大熊猫 🐼".encode(), b"x" * 70000]
    reference = grpcaio.InferInput("passages", [len(items)], "BYTES")
    reference.set_data_from_numpy(np.array(items, dtype=np.object_))
    fast = bytes_input("passages", items)
    assert fast._raw_content == reference._raw_content
    assert fast._get_tensor() == reference._get_tensor() and fast.shape() == [4]
