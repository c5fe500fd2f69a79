"""Shared fixtures: tiny checkpoints exported into a model repository, a real embedded Triton
server serving it over gRPC and HTTP, and clients for it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def test_repository(tmp_path_factory):
    """Every test model exported into one Triton model repository."""
    from tests.support.repository import build_repository

    root = tmp_path_factory.mktemp("model_repository")
    return build_repository(root, tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def triton_server(test_repository, tmp_path_factory):
    """The real tritonserver (embedded, Python backend) serving the test repository."""
    from reranker_server.embedded import EmbeddedTritonServer
    from tests.support.ports import free_ports

    http, grpc, metrics = free_ports(3)
    log = tmp_path_factory.mktemp("server") / "tritonserver.log"
    server = EmbeddedTritonServer(
        test_repository.root, http_port=http, grpc_port=grpc, metrics_port=metrics, log_file=log
    )
    try:
        server.start(timeout=300)
    except Exception:
        print(log.read_text()[-6000:] if log.exists() else "no server log", file=sys.stderr)
        raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def make_client(triton_server):
    """Factory: make_client(model, protocol="grpc", **kwargs) -> RerankerClient (closed at the end)."""
    from reranker_client import RerankerClient

    clients = []

    def factory(model: str, protocol: str = "grpc", **kwargs):
        url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url
        client = RerankerClient(url, model, protocol, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture(scope="module")
def single_torch_thread():
    """One intra-op thread in this process and in subprocesses (the oracle): tiny models on a shared
    2-core machine, where spinning thread pools cost far more than they give."""
    import torch

    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    mp.undo()


INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"


def pytest_collection_modifyitems(config, items):
    """Everything under tests/integration/ is marked `integration` by where it lives, not by each file."""
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
