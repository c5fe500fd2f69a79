"""The embedded Triton server with one model loaded, on free loopback ports (benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

from reranker_server.embedded import EmbeddedTritonServer, free_ports


def one_model_server(
    repository: os.PathLike | str, model: str, log_file: Path | None = None
) -> EmbeddedTritonServer:
    """A server (not started yet) loading only `model`: other models cannot hold it up."""
    http, grpc, metrics = free_ports(3)
    return EmbeddedTritonServer(
        repository,
        http_port=http,
        grpc_port=grpc,
        metrics_port=metrics,
        log_file=log_file,
        extra_args=("--model-control-mode=explicit", f"--load-model={model}"),
    )
