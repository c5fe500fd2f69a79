"""The API's pooled Triton connection without a server: requests spread over the replicas, a
failing replica ejected and the request sent to another one, a replica serving another manifest
left out, final errors not retried, and the per-replica series on /metrics."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from prometheus_client import generate_latest
from tritonclient.utils import InferenceServerException

from reranker_api.backend import BackendUnavailable, InvalidRequest
from reranker_api.metrics import Metrics
from reranker_api.triton_pool import PooledTriton, backend_error
from reranker_core.endpoints import PoolOptions

MODEL = "enc-text"


def config(version: int) -> dict:
    manifest = json.dumps({"family": "encoder", "version": version})
    return {"config": {"parameters": {"reranker_manifest": {"string_value": manifest}}}}


class FakeReplica:
    """A tritonclient.grpc.aio client of one replica: ready or not, its manifest, scripted infers."""

    def __init__(
        self, name: str, version: int = 1, errors: list[Exception] | None = None, delay: float = 0.0
    ):
        self.name, self.version, self.errors, self.delay = name, version, list(errors or []), delay
        self.ready = True
        self.infers = 0

    async def is_server_ready(self, client_timeout=None):
        return self.ready

    async def is_model_ready(self, name, client_timeout=None):
        return self.ready

    async def get_model_config(self, name, as_json=False, client_timeout=None):
        return config(self.version)

    async def get_model_repository_index(self, as_json=False, client_timeout=None):
        return {"models": [{"name": MODEL}]}

    async def infer(self, model, inputs, client_timeout=None, **kwargs):
        self.infers += 1
        if self.errors:
            raise self.errors.pop(0)
        await asyncio.sleep(self.delay)
        return self.name

    async def close(self):
        pass


def pooled(*replicas: FakeReplica, **options) -> PooledTriton:
    addresses = ",".join(f"10.0.0.{i}:8001" for i in range(1, len(replicas) + 1))
    by_address = dict(zip(addresses.split(","), replicas))
    return PooledTriton(addresses, options=PoolOptions(**options), make_client=by_address.__getitem__)


def unavailable() -> InferenceServerException:
    return InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")


def test_requests_spread_over_the_ready_replicas():
    async def main():
        replicas = [FakeReplica(n, delay=0.001) for n in "abc"]
        triton = pooled(*replicas)
        answers = await asyncio.gather(*(triton.infer(MODEL, [], client_timeout=5) for _ in range(300)))
        counts = Counter(answers)
        assert set(counts) == {"a", "b", "c"} and all(50 <= n <= 200 for n in counts.values()), counts
        assert await triton.is_server_ready() and await triton.is_model_ready(MODEL)
        await triton.close()

    asyncio.run(main())


def test_a_failing_replica_is_ejected_and_the_request_goes_to_another():
    async def main():
        broken = FakeReplica("a", errors=[unavailable()] * 100)
        triton = pooled(broken, FakeReplica("b"), eject_base_s=60.0, eject_max_s=60.0)
        answers = [await triton.infer(MODEL, [], client_timeout=5) for _ in range(20)]
        assert answers == ["b"] * 20 and broken.infers == 1  # ejected at its first failure
        metrics = Metrics(endpoints=triton.status)
        text = generate_latest(metrics.registry).decode()
        assert 'reranker_api_triton_endpoint_ejections_total{endpoint="10.0.0.1:8001"} 1.0' in text
        assert 'reranker_api_triton_endpoint_up{endpoint="10.0.0.1:8001"} 0.0' in text
        assert 'reranker_api_triton_endpoint_requests_total{endpoint="10.0.0.2:8001"} 20.0' in text
        assert 'reranker_api_triton_endpoint_in_flight{endpoint="10.0.0.2:8001"} 0.0' in text
        await triton.close()

    asyncio.run(main())


def test_a_replica_serving_another_manifest_gets_no_request():
    async def main():
        triton = pooled(FakeReplica("a"), FakeReplica("b", version=2), FakeReplica("c"))
        answers = {await triton.infer(MODEL, [], client_timeout=5) for _ in range(50)}
        assert answers == {"a", "c"}
        await triton.close()

    asyncio.run(main())


def test_a_final_error_is_not_retried_on_another_replica():
    async def main():
        rejected = InferenceServerException("passages[0] is empty", status="StatusCode.INVALID_ARGUMENT")
        replicas = [FakeReplica("a", errors=[rejected]), FakeReplica("b", errors=[rejected])]
        triton = pooled(*replicas)
        with pytest.raises(InferenceServerException) as info:
            await triton.infer(MODEL, [], client_timeout=5)
        assert isinstance(backend_error(info.value, "enc", triton.url), InvalidRequest)
        assert sum(r.infers for r in replicas) == 1
        assert all(s.state == "live" for s in triton.status())
        await triton.close()

    asyncio.run(main())


def test_no_ready_replica_is_unavailable_with_the_reason():
    async def main():
        replicas = [FakeReplica("a"), FakeReplica("b")]
        for replica in replicas:
            replica.ready = False
        triton = pooled(*replicas)
        with pytest.raises(Exception) as info:
            await triton.is_server_ready()
        error = backend_error(info.value, "enc", triton.url)
        assert isinstance(error, BackendUnavailable) and "10.0.0.1:8001 ejected" in error.message
        await triton.close()

    asyncio.run(main())


def test_a_dns_name_is_resolved_again_and_replicas_come_and_go():
    async def main():
        from reranker_core.endpoints import EndpointPool

        answer = [["10.0.0.1:8001"]]
        pool = EndpointPool(
            "dns:///triton-headless.ns.svc:8001",
            PoolOptions(refresh_s=0.05, health_s=0),
            resolver=lambda host, port: list(answer[0]),
        )
        replicas = {f"10.0.0.{i}:8001": FakeReplica(str(i)) for i in (1, 2)}
        triton = PooledTriton(str(pool.spec), pool=pool, make_client=replicas.__getitem__)

        async def served(n: int) -> set[str]:
            return {await triton.infer(MODEL, [], client_timeout=5) for _ in range(n)}

        assert await served(20) == {"1"}
        answer[0] = ["10.0.0.1:8001", "10.0.0.2:8001"]  # the HPA added a pod
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(triton.status()) == 2 and all(s.state == "live" for s in triton.status()):
                break
        assert await served(100) == {"1", "2"}, triton.status()
        answer[0] = ["10.0.0.2:8001"]  # the first pod left
        for _ in range(100):
            await asyncio.sleep(0.05)
            if len(triton.status()) == 1:
                break
        assert await served(20) == {"2"} and "10.0.0.1:8001" not in triton._clients
        await triton.close()

    asyncio.run(main())
