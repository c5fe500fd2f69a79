"""`python -m reranker_server.embedded` never leaves an orphaned tritonserver or its scratch
directory behind: SIGTERM (systemd, Kubernetes, kill), SIGHUP and the death of its parent stop
the server and clean up; a SIGKILLed owner's server is stopped by the kernel (parent-death
signal) and its directory is removed by the next start. Real processes, real tritonserver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from reranker_server.embedded import OWNER_FILE, WORKDIR_PREFIX, EmbeddedTritonServer, sweep_stale_workdirs
from reranker_server.process_tree import process_tree
from tests.support.ports import free_ports
from tests.support.waiting import wait_until

WAIT_S = 300  # an upper bound for slow shared machines, not a timing assertion


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    """One tiny encoder: the server starts fast."""
    from tests.support.repository import ENCODER_MODELS, build_repository

    root = tmp_path_factory.mktemp("lifetime_repo")
    build_repository(root, tmp_path_factory.mktemp("lifetime_ckpt"), ENCODER_MODELS[:1])
    return root


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _serve_command(repository: Path, ports: list[int]) -> list[str]:
    http, grpc, metrics = ports
    return [
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
    ]


def _server_child(wrapper_pid: int):
    """The tritonserver below the wrapper (its guard's child)."""
    for pid in process_tree(wrapper_pid):
        try:
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if argv0.endswith(b"/tritonserver"):
            return pid
    return None


def _tritonserver_of(wrapper_pid: int) -> tuple[int, Path]:
    """The wrapper's tritonserver and its scratch directory (from its command line)."""
    wait_until(lambda: _server_child(wrapper_pid) is not None, "tritonserver child process")
    pid = _server_child(wrapper_pid)
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    backends = next(a.split("=", 1)[1] for a in args if a.startswith("--backend-directory="))
    workdir = Path(backends).parent
    assert workdir.name.startswith(WORKDIR_PREFIX) and workdir.is_dir()
    return pid, workdir


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_stop_signal_stops_the_server_and_removes_its_directory(repository, sig):
    ports = free_ports(3)
    wrapper = subprocess.Popen(
        _serve_command(repository, ports), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        server_pid, workdir = _tritonserver_of(wrapper.pid)
        wait_until(lambda: _ready(ports[0]), "server ready")
        guard_pid = int(Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
        assert guard_pid in _children(wrapper.pid)
        assert (workdir / OWNER_FILE).read_text().splitlines()[0].split() == [
            str(wrapper.pid),
            str(guard_pid),
        ]
        wrapper.send_signal(sig)
        out = wrapper.communicate(timeout=WAIT_S)[0].decode(errors="replace")
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    assert wrapper.returncode == 0, out[-3000:]
    assert f"{signal.Signals(sig).name}: stopping tritonserver" in out
    assert not _alive(server_pid), "tritonserver survived its wrapper"
    assert not workdir.exists()
    assert not _ready(ports[0])


def test_parent_death_stops_the_server_and_removes_its_directory(repository, tmp_path):
    """A supervisor that dies without signalling its child: the wrapper notices (it is
    re-parented) and shuts down cleanly."""
    ports = free_ports(3)
    pid_file = tmp_path / "wrapper.pid"
    launcher = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen({_serve_command(repository, ports)!r}, stdout=subprocess.DEVNULL, "
        "stderr=subprocess.DEVNULL)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(3600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", launcher])
    try:
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), "wrapper started")
        wrapper_pid = int(pid_file.read_text())
        server_pid, workdir = _tritonserver_of(wrapper_pid)
        wait_until(lambda: _ready(ports[0]), "server ready")
        parent.kill()
        parent.wait()
        wait_until(lambda: not _alive(wrapper_pid), "wrapper exit after its parent died")
        wait_until(lambda: not _alive(server_pid), "tritonserver exit")
    finally:
        if parent.poll() is None:
            parent.kill()
    assert not workdir.exists()


def test_killed_owner_server_stops_and_next_start_sweeps_its_directory(repository):
    """SIGKILL cannot be handled: the kernel's parent-death signal stops tritonserver, and the
    directory left behind is removed by the next server start (sweep_stale_workdirs)."""
    ports = free_ports(3)
    wrapper = subprocess.Popen(
        _serve_command(repository, ports), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        server_pid, workdir = _tritonserver_of(wrapper.pid)
        tree = process_tree(wrapper.pid)[1:]  # the guard, tritonserver, its stubs
        wait_until(lambda: _ready(ports[0]), "server ready")
        wrapper.kill()
        wrapper.wait()
        wait_until(lambda: not _alive(server_pid), "tritonserver exit after its owner was killed")
        wait_until(lambda: not any(_alive(p) for p in tree), "the server's processes exit")
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
    assert workdir.exists()  # nobody was left to remove it ...
    live = EmbeddedTritonServer(repository)
    live.command()  # ... until the next server prepares its own directory
    try:
        assert not workdir.exists()
        assert live._workdir is not None and live._workdir.exists()
        assert live._workdir not in sweep_stale_workdirs()  # a live owner's directory stays
    finally:
        live.stop()


def test_make_serve_launcher_stops_everything_on_sighup(repository):
    """`make serve` (tools/serve.py) forwards SIGHUP like SIGTERM: no orphaned server."""
    http, grpc, metrics = free_ports(3)
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.serve",
            "--model-repository",
            str(repository),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
            "--api-port",
            "0",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        wait_until(lambda: bool(_children(launcher.pid)), "the embedded server wrapper")
        wrapper_pid = _children(launcher.pid)[0]
        server_pid, workdir = _tritonserver_of(wrapper_pid)
        wait_until(lambda: _ready(http), "server ready")
        launcher.send_signal(signal.SIGHUP)
        assert launcher.wait(timeout=WAIT_S) == 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert not _alive(wrapper_pid) and not _alive(server_pid)
    assert not workdir.exists()


def test_sweep_keeps_directories_of_live_processes(tmp_path):
    mine = tmp_path / f"{WORKDIR_PREFIX}live"
    mine.mkdir()
    (mine / OWNER_FILE).write_text(f"{os.getpid()}")
    dead_pid = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    stale = tmp_path / f"{WORKDIR_PREFIX}stale"
    stale.mkdir()
    (stale / OWNER_FILE).write_text(f"{dead_pid} {dead_pid}")
    unknown = tmp_path / f"{WORKDIR_PREFIX}no-owner"  # being created: no owner file yet
    unknown.mkdir()
    elsewhere = tmp_path / f"{WORKDIR_PREFIX}other-namespace"  # another container's pids
    elsewhere.mkdir()
    (elsewhere / OWNER_FILE).write_text(f"{dead_pid} {dead_pid}\npid:[1]\n")
    assert sweep_stale_workdirs(tmp_path) == [stale]
    assert mine.exists() and unknown.exists() and elsewhere.exists() and not stale.exists()
