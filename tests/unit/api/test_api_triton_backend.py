"""reranker_api.triton without a server: gRPC errors mapped to backend errors, the request
parameters written from reranker_core's ScoreOptions, model discovery from the manifest and its
aliases (hub ids, never a path), and no retry of a refused request."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from reranker_api.backend import (
    BackendFailure,
    BackendTimeout,
    BackendUnavailable,
    InvalidRequest,
    ModelNotFound,
)
from reranker_api.triton import TritonBackend
from reranker_api.triton_pool import backend_error
from reranker_core.manifest import ModelManifest, TokenizerInfo
from reranker_core.options import parse_options

SOURCES = {"enc": "BAAI/enc", "llm": "/models/checkpoints/llm"}  # a hub id, a local export


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
    error = backend_error(grpc_error(status, message), "m", "host:8001")
    assert type(error) is kind
    if kind is InvalidRequest:
        assert error.message == message  # the model's own words reach the caller
    assert backend_error(ConnectionResetError("reset"), "m", "h").__class__ is BackendUnavailable


class FakeGrpc:
    """Just the tritonclient.grpc.aio calls the backend makes."""

    def __init__(self, models=("enc-text", "enc", "llm-text", "llm"), reject_truncate=False):
        self.models = list(models)
        self.reject_truncate = reject_truncate
        self.infers: list[dict] = []

    async def get_model_repository_index(self, as_json=False, client_timeout=None):
        return {"models": [{"name": n, "state": "READY"} for n in self.models]}

    async def get_model_config(self, name, as_json=False, client_timeout=None):
        text = manifest(name[: -len("-text")]).to_json()
        return {"config": {"parameters": {"reranker_manifest": {"string_value": text}}}}

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


def manifest(name: str) -> ModelManifest:
    return ModelManifest(
        family="encoder",
        name=name,
        tokenizer=TokenizerInfo(sha256="0" * 64),
        max_positions=514,
        default_max_length=512,
        source=SOURCES[name],
    )


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
        assert info.manifest == manifest("enc") and info.family == "encoder"
        assert (await backend.resolve("llm")).aliases == ("llm-text",)  # never its checkpoint path
        with pytest.raises(ModelNotFound):
            await backend.resolve(SOURCES["llm"])
        with pytest.raises(ModelNotFound, match="'nope' is not served here; served models: enc, llm"):
            await backend.resolve("nope")
        fixed = backend_with(FakeGrpc(), models=("llm-text",))
        assert [m.name for m in await fixed.models()] == ["llm"]

    asyncio.run(main())


def test_score_sends_the_text_model_request():
    async def main():
        fake = FakeGrpc()
        backend = backend_with(fake)
        fields = {"normalize": True, "truncate": False, "max_length": 64, "long_passages": "max_window"}
        options = parse_options(fields, manifest("enc"))
        scores = await backend.score("enc", b"q", [b"a", b"b", b"c"], options, 5.0)
        assert scores.shape == (1, 3)
        await backend.score("enc", b"q", [b"a"], None, None)  # the model's defaults
        assert fake.infers == [
            {
                "model": "enc-text",
                # the sigmoid is the API's (raw logits on the wire), query_max_length resolved
                "parameters": {
                    "max_length": 64,
                    "query_max_length": 48,
                    "long_passages": "max_window",
                    "truncate": False,
                },
                "timeout": 5.0,
                "shapes": [[1], [3]],
            },
            {"model": "enc-text", "parameters": {}, "timeout": None, "shapes": [[1], [1]]},
        ]

    asyncio.run(main())


def test_a_refused_request_is_not_sent_again():
    async def main():
        fake = FakeGrpc(reject_truncate=True)
        backend = backend_with(fake)
        strict = parse_options({"truncate": False}, manifest("enc"))
        for _ in range(2):
            with pytest.raises(InvalidRequest, match="unknown option"):
                await backend.score("enc", b"q", [b"a"], strict, None)
        assert len(fake.infers) == 2

    asyncio.run(main())


def test_unreachable_server_is_unavailable_everywhere():
    async def main():
        backend = TritonBackend("127.0.0.1:1")  # nothing listens on port 1
        with pytest.raises(BackendUnavailable):
            await backend.models()
        state = await backend.readiness("enc")
        assert not state.ready and "unreachable" in state.reason
        with pytest.raises(BackendUnavailable):
            await backend.score("enc", b"q", [b"a"], None, 2.0)
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
