"""The SDK's four transports (sync/asyncio x gRPC/HTTP) over several replicas, each a scripted
stand-in for tritonclient's client: requests spread, a failing replica ejected and its request sent
to another one (no retry of the call needed), a replica with another manifest left out, and one
error when no replica can answer."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from reranker_client.errors import InferenceError, ServerUnavailableError
from reranker_client.ops import InferRequest, Tensor
from reranker_client.retry import RetryPolicy
from reranker_client.session import infer_flow
from reranker_client.settings import ConnectionSettings

TRANSPORTS = [(m, p) for m in ("sync", "async") for p in ("grpc", "http")]
REQUEST = InferRequest((Tensor("input_ids", "INT64", np.ones((1, 3), np.int64)),), ("scores",))
ONE_ATTEMPT = RetryPolicy.none()


def unavailable() -> InferenceServerException:
    return InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")


class Result:
    def __init__(self, name: str) -> None:
        self.name = name

    def as_numpy(self, output: str):
        return np.array([[float(ord(self.name[-1]))]], np.float32)


class Replica:
    """A sync tritonclient client of one replica."""

    def __init__(self, name: str, manifest: str = "A", fail: Exception | None = None) -> None:
        self.name, self.fail = name, fail  # fail: down (not live, every call fails)
        self.infer_error: Exception | None = None  # live, but its inferences fail
        self.config = {"parameters": {"reranker_manifest": {"string_value": json.dumps({"v": manifest})}}}
        self.infers = 0

    def is_server_live(self, **kw: Any) -> bool:
        return self.fail is None

    def is_model_ready(self, *args: Any, **kw: Any) -> bool:
        return True

    def get_model_config(self, *args: Any, **kw: Any) -> dict:
        return self.config

    def get_model_repository_index(self, **kw: Any) -> list:
        return []

    def infer(self, *args: Any, **kw: Any) -> Result:
        self.infers += 1
        if self.fail is not None or self.infer_error is not None:
            raise self.fail or self.infer_error
        return Result(self.name)

    def async_infer(self, *args: Any, **kw: Any):
        try:
            result = self.infer(*args, **kw)
        except Exception as exc:  # noqa: BLE001 - raised by get_result, as tritonclient does
            error = exc
            return SimpleNamespace(get_result=lambda: (_ for _ in ()).throw(error))
        return SimpleNamespace(get_result=lambda: result)

    def close(self) -> None:
        pass


class AsyncReplica(Replica):
    def __getattribute__(self, name: str):
        attribute = super().__getattribute__(name)
        if name in (
            "is_server_live",
            "is_model_ready",
            "get_model_config",
            "get_model_repository_index",
            "infer",
            "close",
        ):

            async def call(*args: Any, **kw: Any):
                return attribute(*args, **kw)

            return call
        return attribute


def scores(
    mode: str, protocol: str, replicas: list[Replica], calls: int, requests: int = 1, dns: bool = False
) -> tuple[list, list]:
    """`calls` scoring calls (each of `requests` requests) through the real transport: their
    answers (the replica names) and the pool's state. dns: the replicas are the addresses of a
    dns:/// name (a stand-in resolver)."""
    addresses = [f"10.0.0.{i}:8001" for i in range(1, len(replicas) + 1)]
    by_address = dict(zip(addresses, replicas))
    url = "dns:///triton-headless.ns.svc:8001" if dns else ",".join(addresses)
    settings = ConnectionSettings.create(url, protocol, "m")
    target = SimpleNamespace(model="m", version="")
    flow = lambda: infer_flow(target, [REQUEST] * requests)  # noqa: E731

    def name(answer: dict) -> str:
        return f"r{int(answer['scores'][0, 0]) - ord('0')}"

    if mode == "sync":
        from reranker_client.transport import Transport

        transport = Transport(settings)
        transport.calls.make_client = by_address.__getitem__
        transport.pool.resolver = lambda host, port: list(addresses)
        try:
            transport.maintain()
            transport.connected()
            answers = [[name(a) for a in transport.call(flow, ONE_ATTEMPT)] for _ in range(calls)]
            return answers, transport.endpoints()
        finally:
            transport.close()

    async def main():
        from reranker_client.aio import AsyncTransport

        transport = AsyncTransport(settings)
        transport.calls.make_client = by_address.__getitem__
        transport.pool.resolver = lambda host, port: list(addresses)
        try:
            await transport.maintain()
            transport.connected()
            answers = [[name(a) for a in await transport.call(flow, ONE_ATTEMPT)] for _ in range(calls)]
            return answers, transport.endpoints()
        finally:
            await transport.close()

    return asyncio.run(main())


def make(mode: str, *args: Any, **kwargs: Any) -> Replica:
    return (Replica if mode == "sync" else AsyncReplica)(*args, **kwargs)


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_requests_spread_and_a_failing_replica_is_left_out(mode, protocol):
    replicas = [make(mode, "r1"), make(mode, "r2"), make(mode, "r3")]
    answers, _ = scores(mode, protocol, replicas, 30, requests=2)
    assert set(Counter(n for a in answers for n in a)) == {"r1", "r2", "r3"}
    replicas[0].fail = unavailable()  # down after the probes: its requests fail
    replicas[0].infers = 0
    answers, states = scores(mode, protocol, replicas, 30, requests=2)
    assert all(set(a) <= {"r2", "r3"} and len(a) == 2 for a in answers)  # every call answered whole
    # r1 was not probed live this time (is_server_live False): it got no request
    assert replicas[0].infers == 0 and [s.state for s in states] == ["ejected", "live", "live"]


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_a_replica_that_fails_a_request_is_ejected_and_the_request_goes_elsewhere(mode, protocol):
    replicas = [make(mode, f"r{i}") for i in (1, 2, 3)]
    flaky = replicas[1]
    flaky.infer_error = unavailable()  # probed live, then its requests fail
    answers, states = scores(mode, protocol, replicas, 20)
    assert all(a in (["r1"], ["r3"]) for a in answers), answers  # one attempt each: no call failed
    status = {s.address: s for s in states}["10.0.0.2:8001"]
    assert flaky.infers == 1 and status.state == "ejected" and status.ejections == 1 and status.failures == 1


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_a_replica_with_another_manifest_gets_no_request(mode, protocol):
    replicas = [make(mode, "r1"), make(mode, "r2", manifest="B"), make(mode, "r3")]
    answers, states = scores(mode, protocol, replicas, 40)
    assert replicas[1].infers == 0 and {n for a in answers for n in a} == {"r1", "r3"}
    assert "another manifest" in states[1].reason


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_no_replica_left_is_one_clear_error(mode, protocol):
    replicas = [make(mode, "r1", fail=unavailable()), make(mode, "r2", fail=unavailable())]
    with pytest.raises(
        ServerUnavailableError, match="no replica of model 'm' at 10.0.0.1:8001,10.0.0.2:8001"
    ):
        scores(mode, protocol, replicas, 1)


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_a_final_error_is_not_sent_to_another_replica(mode, protocol):
    rejected = InferenceServerException("input_ids: too long", status="StatusCode.INVALID_ARGUMENT")
    replicas = [make(mode, "r1"), make(mode, "r2")]
    for replica in replicas:
        replica.infer_error = rejected
    with pytest.raises(InferenceError, match="too long"):
        scores(mode, protocol, replicas, 1)
    assert sum(r.infers for r in replicas) == 1


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_the_replicas_of_a_dns_name(mode, protocol):
    replicas = [make(mode, "r1"), make(mode, "r2")]
    answers, states = scores(mode, protocol, replicas, 30, dns=True)
    assert {n for a in answers for n in a} == {"r1", "r2"}
    assert [s.address for s in states] == ["10.0.0.1:8001", "10.0.0.2:8001"]


def test_dns_names_and_tls_do_not_mix():
    from reranker_client.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="list the replicas' host names"):
        ConnectionSettings.create("dns:///triton.ns.svc:8001", "grpc", "m", ssl=True)
    with pytest.raises(InvalidInputError, match="empty entry"):
        ConnectionSettings.create("a:8001,,b:8001", "grpc", "m")
