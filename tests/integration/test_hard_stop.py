"""Nothing of a hard-stopped server survives it: `python -m reranker_server.embedded` gets SIGTERM
while a request is stuck in a Python-backend stub, and its whole process group is SIGKILLed
during the shutdown. Its guard (reranker_server.guard) still ends tritonserver and every stub:
no process of the server's tree remains. Real processes, real tritonserver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from reranker_server.process_tree import cmdline, is_alive, process_tree
from tests.support.ports import free_ports
from tests.support.slow_model import SLOW_MODEL, add_slow_model, slow_input, started_requests
from tests.support.waiting import wait_until

WAIT_S = 300  # an upper bound for slow shared machines, not a timing assertion
STUCK_MS = 2 * WAIT_S * 1000  # longer than the test waits: only a kill ends this request
DRAIN_S = 2


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("hard_stop_repo")
    build_repository(root, tmp_path_factory.mktemp("hard_stop_ckpt"), ENCODER_MODELS[:1])
    add_slow_model(root)
    return root


def _ready(server: grpcclient.InferenceServerClient) -> bool:
    try:
        return server.is_server_ready()
    except InferenceServerException:
        return False


def _scratch_directory(tree: list[int]) -> str:
    """The server's scratch directory, from tritonserver's --backend-directory argument; every stub
    names it in its command line."""
    for pid in tree:
        for arg in cmdline(pid):
            if arg.startswith("--backend-directory="):
                return str(Path(arg.split("=", 1)[1]).parent)
    pytest.fail("no tritonserver in the launcher's tree")


def _processes_naming(text: str) -> list[int]:
    """Live processes (anywhere, whoever their parent now is) whose command line contains `text`."""
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit()
        and is_alive(int(entry.name))
        and any(text in a for a in cmdline(int(entry.name)))
    ]


def _stuck_request(url: str, errors: list) -> None:
    client = grpcclient.InferenceServerClient(url)
    try:
        client.infer(SLOW_MODEL, [slow_input(STUCK_MS)], client_timeout=2 * WAIT_S)
    except InferenceServerException as exc:
        errors.append(exc)


def test_group_sigkill_during_shutdown_leaves_no_process(repository):
    http, grpc, metrics = free_ports(3)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reranker_server.embedded",
            "--model-repository",
            str(repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            "--drain-timeout-s",
            str(DRAIN_S),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own group, as `make serve` in a terminal
    )
    url = f"127.0.0.1:{grpc}"
    probe = grpcclient.InferenceServerClient(url)
    errors: list = []
    tree: list[int] = []
    try:
        wait_until(lambda: _ready(probe), "server ready")
        tree = process_tree(launcher.pid)
        stubs = [p for p in tree if "triton_python_backend_stub" in cmdline(p)[0]]
        assert len(tree) >= 4 and stubs, f"launcher, guard, tritonserver and stubs expected: {tree}"
        workdir = _scratch_directory(tree)
        stuck = threading.Thread(target=_stuck_request, args=(url, errors), daemon=True)
        stuck.start()
        wait_until(lambda: started_requests(repository) >= 1, "the stuck request executing")

        launcher.send_signal(signal.SIGTERM)  # shutdown begins ...
        wait_until(lambda: not _ready(probe), "server not ready while stopping")
        os.killpg(launcher.pid, signal.SIGKILL)  # ... and is cut short
        launcher.wait()
        wait_until(lambda: not [p for p in tree if is_alive(p)], "every process of the server gone")
        assert not _processes_naming(workdir), "a process started later by the server remains"
    finally:
        probe.close()
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
        for pid in tree:  # whatever the failed assertion left, not to harm later tests
            if is_alive(pid):
                os.kill(pid, signal.SIGKILL)
    stuck.join(WAIT_S)
    assert errors, "the stuck request cannot have succeeded"
