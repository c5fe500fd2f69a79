"""Private embedded servers for tests that break them (faults, crash-prone hostile input)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def start_private_server(
    root: Path, log_dir: Path, name: str, models: Sequence[str], ports: tuple[int, int, int] | None = None
):
    """An EmbeddedTritonServer on free loopback ports (or `ports`) serving only `models`, in
    explicit model-control mode (so a model can be unloaded and loaded again) with a short exit
    timeout (a model whose stub died never finishes unloading)."""
    from reranker_server.embedded import EmbeddedTritonServer
    from tests.support.ports import free_ports

    http, grpc, metrics = ports or free_ports(3)
    server = EmbeddedTritonServer(
        root,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        log_file=Path(log_dir) / f"{name}.log",
        extra_args=(
            "--model-control-mode=explicit",
            *(f"--load-model={m}" for m in models),
            "--exit-timeout-secs=3",
        ),
    )
    return server.start(timeout=300)
