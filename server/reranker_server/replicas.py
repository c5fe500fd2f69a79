"""Several embedded Triton servers on one model repository: a local stand-in for the replicas
of a Kubernetes Deployment (`make serve REPLICAS=3`, the replica tests and the pool benchmark).

Replica i listens on three consecutive ports, `base_port + 3*i` (HTTP), `+1` (gRPC) and `+2`
(metrics), so replica 0 of base 8000 has the single server's ports; without a base every replica
gets free loopback ports. With `gpus=[...]` replica i sees only GPU `gpus[i]`
(CUDA_VISIBLE_DEVICES), one replica per GPU.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker_server.embedded import DRAIN_TIMEOUT_S, EmbeddedTritonServer, free_ports

PORTS_PER_REPLICA = 3  # http, grpc, metrics


@dataclass(frozen=True)
class ReplicaPorts:
    """The loopback ports of one replica."""

    http: int
    grpc: int
    metrics: int


def offset_ports(first: ReplicaPorts, count: int) -> list[ReplicaPorts]:
    """Ports of `count` replicas: replica i uses each of `first`'s ports plus 3*i (with the
    defaults 8000/8001/8002, replica 1 has 8003/8004/8005). All must differ and be valid."""
    if count < 1:
        raise ValueError(f"replica count must be at least 1, got {count}")
    step = PORTS_PER_REPLICA
    ports = [
        ReplicaPorts(first.http + step * i, first.grpc + step * i, first.metrics + step * i)
        for i in range(count)
    ]
    flat = [x for r in ports for x in (r.http, r.grpc, r.metrics)]
    if min(flat) < 1 or max(flat) > 65535:
        raise ValueError(f"ports {min(flat)}..{max(flat)} for {count} replicas are outside 1..65535")
    if len(set(flat)) != len(flat):
        taken = sorted({x for x in flat if flat.count(x) > 1})
        raise ValueError(
            f"replicas would share ports {taken}: give the HTTP, gRPC and metrics ports of "
            f"replica 0 as three different ports (each replica adds {step})"
        )
    return ports


def replica_ports(count: int, base_port: int | None = None) -> list[ReplicaPorts]:
    """Ports for `count` replicas: three consecutive ones per replica from `base_port`, or free
    loopback ports when `base_port` is None."""
    if count < 1:
        raise ValueError(f"replica count must be at least 1, got {count}")
    if base_port is None:
        flat = free_ports(PORTS_PER_REPLICA * count)
        return [
            ReplicaPorts(*flat[i : i + PORTS_PER_REPLICA]) for i in range(0, len(flat), PORTS_PER_REPLICA)
        ]
    return offset_ports(ReplicaPorts(base_port, base_port + 1, base_port + 2), count)


def gpu_environment(gpus: Sequence[str | int] | None, count: int) -> list[dict[str, str]]:
    """Extra environment of each replica: CUDA_VISIBLE_DEVICES=gpus[i] pins replica i to one GPU;
    no pinning (empty dicts) when `gpus` is None."""
    if gpus is None:
        return [{} for _ in range(count)]
    if len(gpus) != count:
        raise ValueError(f"{count} replicas need {count} GPUs (one each), got {len(gpus)}: {list(gpus)}")
    names = [str(g).strip() for g in gpus]
    if any(not n or "," in n for n in names):
        raise ValueError(f"each replica takes exactly one GPU index or UUID, got {list(gpus)}")
    if len(set(names)) != len(names):
        raise ValueError(f"a GPU may serve one replica only, got {names}")
    return [{"CUDA_VISIBLE_DEVICES": n} for n in names]


class ReplicaSet:
    """N embedded tritonservers serving one model repository; use as a context manager or
    start()/stop(). Replicas keep their ports across restart(i)."""

    def __init__(
        self,
        model_repository: os.PathLike | str,
        count: int = 2,
        *,
        base_port: int | None = None,
        gpus: Sequence[str | int] | None = None,
        log_dir: os.PathLike | str | None = None,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
        extra_args: tuple[str, ...] = (),
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.ports = replica_ports(count, base_port)
        envs = gpu_environment(gpus, count)
        self.log_dir = Path(log_dir) if log_dir else None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.servers = [
            EmbeddedTritonServer(
                model_repository,
                http_port=ports.http,
                grpc_port=ports.grpc,
                metrics_port=ports.metrics,
                log_file=self.log_dir / f"replica-{i}.log" if self.log_dir else None,
                extra_args=extra_args,
                environment={**(environment or {}), **envs[i]},
                drain_timeout_s=drain_timeout_s,
            )
            for i, ports in enumerate(self.ports)
        ]

    def __len__(self) -> int:
        return len(self.servers)

    @property
    def grpc_urls(self) -> list[str]:
        return [s.grpc_url for s in self.servers]

    @property
    def http_urls(self) -> list[str]:
        return [s.http_url for s in self.servers]

    def urls(self, protocol: str = "grpc") -> list[str]:
        """host:port of every replica for `protocol` ("grpc" or "http")."""
        if protocol not in ("grpc", "http"):
            raise ValueError(f"protocol must be 'grpc' or 'http', got {protocol!r}")
        return self.grpc_urls if protocol == "grpc" else self.http_urls

    def _index(self, i: int) -> int:
        if not 0 <= i < len(self.servers):
            raise IndexError(f"no replica {i}: this set has replicas 0..{len(self.servers) - 1}")
        return i

    def start(self, i: int | None = None, timeout: float = 300.0) -> ReplicaSet:
        """Start replica `i` (all when None; they load in parallel) and wait until ready."""
        chosen = range(len(self.servers)) if i is None else [self._index(i)]
        try:
            for k in chosen:
                if self.servers[k].process is None:
                    self.servers[k].launch()
            for k in chosen:
                self.servers[k].wait_ready(timeout)
        except BaseException:
            for k in chosen:
                self.servers[k].kill()
            raise
        return self

    def is_ready(self, i: int) -> bool:
        return self.servers[self._index(i)].is_ready()

    def drain(self, i: int, timeout: float | None = None) -> int | None:
        """Graceful stop of replica `i` (the SIGTERM path): not ready at once, new requests
        refused, in-flight ones finish; then the replica's processes are gone."""
        return self.servers[self._index(i)].drain(timeout)

    def kill(self, i: int) -> None:
        """Hard stop of replica `i`: SIGKILL to its whole process tree (stubs included)."""
        self.servers[self._index(i)].kill()

    def restart(self, i: int, timeout: float = 300.0) -> None:
        """Drain replica `i`, start it again on the same ports and wait until it is ready."""
        self.drain(i)
        self.start(i, timeout)

    def pid(self, i: int) -> int | None:
        """The tritonserver pid of replica `i` (its process group id), None when stopped."""
        proc = self.servers[self._index(i)].process
        return proc.pid if proc is not None else None

    def stop(self) -> None:
        """Drain every replica (in parallel) and make sure none of their processes remain."""
        for server in self.servers:
            server.begin_drain()
        for server in self.servers:
            server.drain()

    def __enter__(self) -> ReplicaSet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
