"""A latency-bound stand-in for a Triton replica: a KServe v2 gRPC server (grpc.aio) serving one
text model `<name>-text` whose every request takes `latency_s` of waiting, not of CPU, at most
`capacity` at a time (like that many model instances; the others queue), and scores each passage
by a hash of its text and manifest (the same on every replica serving that manifest). It answers
the calls the rerank API makes: liveness, readiness, model config (with a reranker manifest),
repository index, infer.

With it, the replica benchmark measures the API's balancing and its own CPU rather than the
model's, and the tests get a replica that is slow on purpose. Run one or several in a process:
`python -m bench.fake_triton --ports 9001,9002 --latency-ms 20,200 --capacity 2`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import threading
import zlib
from collections.abc import Sequence

import grpc
import numpy as np
from tritonclient.grpc import model_config_pb2, service_pb2, service_pb2_grpc

MANIFEST = {"family": "encoder", "source": "fake/reranker", "max_positions": 514, "default_max_length": 512}


def passage_score(query: bytes, passage: bytes, manifest: str = "") -> float:
    """The fake model's score of one pair: a stable hash of the texts and of the model's manifest
    (another manifest, other scores), in [0, 1)."""
    return (zlib.crc32(b"\x00".join((manifest.encode(), query, passage))) % 10_000) / 10_000


def bytes_items(raw: bytes) -> list[bytes]:
    """Triton's raw BYTES layout (4-byte little-endian length, then the bytes) -> items."""
    items, offset = [], 0
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return items


class FakeService(service_pb2_grpc.GRPCInferenceServiceServicer):
    """The KServe v2 calls the rerank API uses, for models `name` and `name-text`."""

    def __init__(
        self, name: str, latency_s: float, manifest: dict | None = None, capacity: int | None = None
    ) -> None:
        self.name, self.latency_s, self.capacity = name, latency_s, capacity
        self._slots: asyncio.Semaphore | None = None
        self.text_model = f"{name}-text"
        self.manifest = json.dumps(manifest or MANIFEST, sort_keys=True)
        self.requests = 0

    def score(self, query: bytes, passage: bytes) -> float:
        return passage_score(query, passage, self.manifest)

    def _known(self, model: str) -> bool:
        return model in (self.name, self.text_model)

    async def ServerLive(self, request, context):
        return service_pb2.ServerLiveResponse(live=True)

    async def ServerReady(self, request, context):
        return service_pb2.ServerReadyResponse(ready=True)

    async def ModelReady(self, request, context):
        return service_pb2.ModelReadyResponse(ready=self._known(request.name))

    async def ModelConfig(self, request, context):
        if not self._known(request.name):
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{request.name}' is not found"
            )
        config = model_config_pb2.ModelConfig(name=request.name, max_batch_size=0)
        config.parameters["reranker_manifest"].string_value = self.manifest
        return service_pb2.ModelConfigResponse(config=config)

    async def RepositoryIndex(self, request, context):
        index = service_pb2.RepositoryIndexResponse()
        for model in (self.name, self.text_model):
            index.models.add(name=model, version="1", state="READY")
        return index

    async def ModelInfer(self, request, context):
        if request.model_name != self.text_model:
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"Request for unknown model: '{request.model_name}' is not found"
            )
        self.requests += 1
        names = [i.name for i in request.inputs]
        query = bytes_items(request.raw_input_contents[names.index("query")])[0]
        passages = bytes_items(request.raw_input_contents[names.index("passages")])
        if self.capacity is None:
            await asyncio.sleep(self.latency_s)
        else:
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.capacity)
            async with self._slots:
                await asyncio.sleep(self.latency_s)
        scores = np.array([[self.score(query, p) for p in passages]], dtype=np.float32)
        response = service_pb2.ModelInferResponse(model_name=request.model_name, model_version="1")
        response.outputs.add(name="scores", datatype="FP32", shape=list(scores.shape))
        response.raw_output_contents.append(scores.tobytes())
        return response


class FakeTriton:
    """One fake replica on 127.0.0.1:`port` (0: a free port), served by a thread of its own."""

    def __init__(
        self,
        port: int = 0,
        latency_s: float = 0.01,
        name: str = "fake",
        manifest: dict | None = None,
        capacity: int | None = None,
    ):
        self.service = FakeService(name, latency_s, manifest, capacity)
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._server: grpc.aio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fake-triton")

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def requests(self) -> int:
        return self.service.requests

    def start(self) -> FakeTriton:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)
        return self

    async def _start(self) -> None:
        self._server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(self.service, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{self.port}")
        await self._server.start()

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(0), self._loop).result(30)
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)

    def __enter__(self) -> FakeTriton:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.fake_triton", description=__doc__.split("\n\n")[0])
    p.add_argument("--ports", required=True, help="comma-separated ports, one fake replica each")
    p.add_argument(
        "--latency-ms", default="20", help="wait per request, one value or one per port (default %(default)s)"
    )
    p.add_argument("--capacity", type=int, default=None, help="requests served at once (default: no limit)")
    p.add_argument("--name", default="fake", help="model name; the text model is <name>-text")
    args = p.parse_args(argv)
    ports = [int(port) for port in args.ports.split(",")]
    latencies = [float(ms) / 1000 for ms in args.latency_ms.split(",")]
    if len(latencies) == 1:
        latencies *= len(ports)
    if len(latencies) != len(ports):
        p.error("--latency-ms takes one value or one per port")
    replicas = [
        FakeTriton(port, latency, args.name, capacity=args.capacity).start()
        for port, latency in zip(ports, latencies)
    ]
    print("serving " + ",".join(r.url for r in replicas), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for replica in replicas:
            replica.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
