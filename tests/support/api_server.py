"""Running the rerank HTTP API for tests: in-process (TestClient) or as a real uvicorn server on a
free loopback port, in a thread (unit/client tests) or as its own process (integration tests)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reranker_api import Settings, create_app
from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[2]


def api_client(backend: Any, **settings: Any):
    from fastapi.testclient import TestClient

    return TestClient(create_app(Settings(**settings), backend), raise_server_exceptions=True)


@contextmanager
def threaded_api(backend: Any, **settings: Any) -> Iterator[str]:
    """A real uvicorn server (HTTP over loopback) in a thread; yields its base URL."""
    import uvicorn

    (port,) = free_ports(1)
    config = uvicorn.Config(
        create_app(Settings(port=port, **settings), backend),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class ApiProcess:
    """`python -m reranker_api` as a child process (what `make serve` and the container run)."""

    def __init__(
        self,
        triton_grpc_url: str,
        args: Sequence[str] = (),
        port: int | None = None,
        log_file: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable,
            "-m",
            "reranker_api",
            "--triton-url",
            triton_grpc_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *args,
        ]
        self.log_file = log_file
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ApiProcess:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=str(REPO)
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the API process exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                urllib.request.urlopen(self.url + "/v1/health/live", timeout=2).read()
                return self
            except OSError as err:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the API process did not start: {self.log_tail()}") from err
                time.sleep(0.1)

    def log_tail(self) -> str:
        return self.log_file.read_text()[-4000:] if self.log_file and self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def private_triton(repository_root: Path, log_dir: Path, name: str, models: Sequence[str]) -> Iterator[Any]:
    """An embedded Triton server of its own serving `models` and their `-text` models only (fewer
    models start faster than the shared session server on a loaded machine)."""
    from tests.support.load.servers import start_private_server

    server = start_private_server(
        repository_root, log_dir, name, [n for m in models for n in (m, m + "-text")]
    )
    try:
        yield server
    finally:
        server.stop()
