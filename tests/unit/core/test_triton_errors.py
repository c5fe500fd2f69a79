"""The one classification of Triton failures shared by the SDK and the API."""

from __future__ import annotations

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from reranker_core.triton_errors import Failure, classify, classify_status


@pytest.mark.parametrize(
    "status, message, kind",
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", Failure.UNREACHABLE),
        ("StatusCode.UNAVAILABLE", "Socket closed", Failure.UNREACHABLE),
        ("StatusCode.INTERNAL", "Stub process 'm_0_0' is not healthy.", Failure.BACKEND_GONE),
        (
            "StatusCode.NOT_FOUND",
            "Request for unknown model: 'm' has no available versions",
            Failure.RELOADING,
        ),
        ("400", "Request for unknown model: 'm' has no available versions", Failure.RELOADING),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'x' is not found", Failure.NOT_FOUND),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", Failure.TIMEOUT),
        ("StatusCode.INVALID_ARGUMENT", "passages[2] is empty", Failure.INVALID),
        ("StatusCode.UNAVAILABLE", "This protocol is restricted, expecting header 'k'", Failure.RESTRICTED),
        ("403", "This API is restricted", Failure.RESTRICTED),
        ("StatusCode.INTERNAL", "Server is stopping", Failure.NOT_READY),
        ("StatusCode.INTERNAL", "something broke", Failure.SERVER_ERROR),
    ],
)
def test_server_answers(status, message, kind):
    assert classify_status(status, message) is kind
    classified = classify(InferenceServerException(message, status=status))
    assert classified.kind is kind and classified.message == message


def test_replica_failures_are_the_ones_another_replica_may_not_have():
    assert {k for k in Failure if k.replica_failure} == {
        Failure.UNREACHABLE,
        Failure.BACKEND_GONE,
        Failure.RELOADING,
        Failure.NOT_READY,
    }


def test_library_errors():
    import aiohttp
    from geventhttpclient.response import HTTPConnectionClosed

    for exc in (
        HTTPConnectionClosed("connection closed."),
        ConnectionRefusedError("refused"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError("connect timed out"),
    ):
        assert classify(exc).kind is Failure.UNREACHABLE, exc
    assert classify(ValueError("x")).kind is Failure.SERVER_ERROR

    class RpcError(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.UNAVAILABLE

        def details(self):
            return "connection refused"

    assert classify(RpcError()).kind is Failure.UNREACHABLE
