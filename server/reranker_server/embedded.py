"""Start, wait for and stop the real `tritonserver` shipped inside the `nvidia-pytriton` wheel.

That binary has only the Python backend; it serves the models' `configs/embedded.pbtxt`
(chosen with `--model-config-name`). Used by `make serve`, the demo, the tests and the benchmarks.

Lifetime: the server never outlives its owner. tritonserver runs under reranker_server.guard,
the leader of its process group (stubs included), which gets SIGTERM from the kernel when the
process that started it dies (Linux parent-death signal) and kills whatever of the group is left
after a drain. `python -m reranker_server.embedded` drains the server (in-flight requests finish,
up to --drain-timeout-s) and removes its scratch directory on SIGTERM, SIGHUP and SIGINT, and when
its own parent dies; a scratch directory left by a killed owner is removed by the next start.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from reranker_server.process_tree import children, cmdline, group_members

EMBEDDED_CONFIG_NAME = "embedded"
DRAIN_TIMEOUT_S = 30.0  # in-flight requests get this long to finish after SIGTERM (--exit-timeout-secs)


def free_ports(count: int) -> list[int]:
    """`count` loopback ports free right now (for servers started by the demo, tests, benchmarks)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


WORKDIR_PREFIX = "reranker-triton-"
OWNER_FILE = "owner"  # in the scratch directory: "<owner pid> <server pid>", PID namespace
PR_SET_PDEATHSIG = 1


class ServerError(RuntimeError):
    """The embedded server could not be found, started or did not become ready."""


def _pytriton_root() -> Path:
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise ServerError("nvidia-pytriton is not installed: pip install --no-deps nvidia-pytriton==0.7.0")
    return Path(list(spec.submodule_search_locations)[0])


def _backend_directory(root: Path, workdir: Path) -> Path:
    """A backend directory with the Python backend and the stub for this interpreter."""
    triton = root / "tritonserver"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = triton / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise ServerError(f"no Python-backend stub for Python {version} in {stub.parent.parent}")
    python_dir = workdir / "backends" / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for src in (
        triton / "backends" / "python" / "libtriton_python.so",
        triton / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        dst = python_dir / src.name
        if not dst.exists():
            dst.symlink_to(src)
    return workdir / "backends"


def server_environment(root: Path) -> dict[str, str]:
    """Environment for tritonserver: libpython and the wheel's libraries, this venv first on PATH."""
    env = dict(os.environ)
    libs = [sysconfig.get_config_var("LIBDIR") or "", str(root.parent / "nvidia_pytriton.libs")]
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in libs if p)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _pid_namespace() -> str:
    """This process's PID namespace (pids are only comparable inside one)."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def owner_record(pids: list[int]) -> str:
    """The OWNER_FILE text: the pids on the first line, the PID namespace on the second."""
    return " ".join(map(str, pids)) + "\n" + _pid_namespace() + "\n"


def sweep_stale_workdirs(tmp_root: os.PathLike | str | None = None) -> list[Path]:
    """Remove this user's scratch directories whose owner and server processes are both gone
    (left behind when an owner was killed with SIGKILL); returns the removed paths. Directories
    of another PID namespace (a container sharing /tmp) are left alone."""
    root = Path(tmp_root or tempfile.gettempdir())
    removed = []
    for path in root.glob(WORKDIR_PREFIX + "*"):
        try:
            if not path.is_dir() or path.stat().st_uid != os.getuid():
                continue
            lines = (path / OWNER_FILE).read_text().splitlines()
            pids = [int(p) for p in lines[0].split()]
        except (OSError, ValueError, IndexError):
            continue  # being created right now, or not one of ours
        if len(lines) > 1 and lines[1] != _pid_namespace():
            continue
        if pids and not any(_pid_alive(pid) for pid in pids):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def kill_process_group(pgid: int, timeout: float = 30.0) -> None:
    """SIGKILL every process of the group `pgid` (a server started in its own session and the
    stubs it forked) and wait until none is left (at most `timeout` seconds: a busy machine
    takes a moment to tear down a process holding a large model)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        if not group_members(pgid) or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _prctl():
    """libc's prctl (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


def set_parent_death_signal(sig: int) -> bool:
    """Make the kernel send `sig` to this process when the thread that started it exits (Linux
    PR_SET_PDEATHSIG); False where that is not available. The guard calls it on itself first thing."""
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def parent_death_signal(sig: int = signal.SIGTERM):
    """A `preexec_fn` that makes the kernel send `sig` to the child when its parent dies.

    Linux only, and only in a single-threaded process (None otherwise): code run between fork and
    exec in a process with other threads can deadlock or crash (a lock held by another thread),
    and the signal follows the *thread* that forks. tools.serve and the guard qualify; a server
    started from a busy process lets its guard set the signal on itself instead
    (set_parent_death_signal). The child re-checks its parent in case it died before prctl.
    """
    if threading.active_count() > 1 or threading.current_thread() is not threading.main_thread():
        return None
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def set_in_child() -> None:
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return set_in_child


class EmbeddedTritonServer:
    """A tritonserver process on loopback ports; use as a context manager or start()/stop()."""

    def __init__(
        self,
        model_repository: os.PathLike | str,
        *,
        http_port: int = 8000,
        grpc_port: int = 8001,
        metrics_port: int = 8002,
        config_name: str | None = EMBEDDED_CONFIG_NAME,
        log_file: os.PathLike | str | None = None,
        log_verbose: int = 0,
        extra_args: tuple[str, ...] = (),
        environment: Mapping[str, str] | None = None,
        drain_timeout_s: float = DRAIN_TIMEOUT_S,
    ) -> None:
        self.model_repository = Path(model_repository).resolve()
        self.http_port, self.grpc_port, self.metrics_port = http_port, grpc_port, metrics_port
        self.config_name = config_name
        self.log_file = Path(log_file) if log_file else None
        self.log_verbose = log_verbose
        self.extra_args = tuple(extra_args)
        self.environment = dict(environment or {})
        self.drain_timeout_s = drain_timeout_s
        self.process: subprocess.Popen | None = None
        self._draining = False
        self._workdir: Path | None = None

    @property
    def server_pid(self) -> int | None:
        """The tritonserver process (below its guard, `process`); its tree holds the stubs. For
        memory and CPU figures of the server alone. None when not running."""
        if self.process is None:
            return None
        for pid in children(self.process.pid):
            argv = cmdline(pid)
            if argv and argv[0].endswith("/tritonserver"):
                return pid
        return None

    @property
    def http_url(self) -> str:
        return f"localhost:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"localhost:{self.grpc_port}"

    def command(self) -> list[str]:
        root = _pytriton_root()
        if self._workdir is None:
            sweep_stale_workdirs()
            self._workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
            self._write_owner()
        backends = _backend_directory(root, self._workdir)
        cmd = [
            str(root / "tritonserver" / "bin" / "tritonserver"),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={backends}",
            f"--http-port={self.http_port}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-port={self.metrics_port}",
            "--http-address=127.0.0.1",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=true",
            "--allow-gpu-metrics=false",
            "--allow-cpu-metrics=true",
            f"--log-verbose={self.log_verbose}",
            "--exit-on-error=false",
            "--strict-readiness=true",
        ]
        if not any(a.startswith("--exit-timeout-secs") for a in self.extra_args):
            cmd.append(f"--exit-timeout-secs={math.ceil(self.drain_timeout_s)}")
        if self.config_name:
            cmd.append(f"--model-config-name={self.config_name}")
        return cmd + list(self.extra_args)

    def _write_owner(self) -> None:
        pids = [os.getpid()] + ([self.process.pid] if self.process is not None else [])
        if self._workdir is not None:
            (self._workdir / OWNER_FILE).write_text(owner_record(pids))

    def guarded_command(self) -> list[str]:
        """command() run under reranker_server.guard, the leader of the server's process group
        that makes sure no process of it (tritonserver, its stubs) outlives the server."""
        guard = [
            sys.executable,
            "-m",
            "reranker_server.guard",
            f"--drain-timeout-s={self.drain_timeout_s:g}",
            f"--parent-pid={os.getpid()}",
        ]
        if threading.current_thread() is threading.main_thread():  # the thread that lives as long as us
            guard.append("--parent-death-signal")
        return [*guard, "--", *self.command()]

    def launch(self, stdout=None) -> subprocess.Popen:
        """Start the server without waiting for it: its guard (`process`), in its own session,
        runs tritonserver and stops it when this process dies."""
        if not self.model_repository.is_dir():
            raise ServerError(f"model repository not found: {self.model_repository}")
        cmd = self.guarded_command()
        if stdout is None:
            stdout = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(
            cmd,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env={**server_environment(_pytriton_root()), **self.environment},
            start_new_session=True,  # no preexec_fn: this process may have other threads
        )
        self._write_owner()
        return self.process

    def start(self, timeout: float = 120.0) -> EmbeddedTritonServer:
        """Start the server and block until it reports ready (all models loaded)."""
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"tritonserver exited with code {self.process.returncode}"
                    + (f"; see {self.log_file}" if self.log_file else "")
                )
            if self.is_ready():
                return
            time.sleep(0.25)
        raise ServerError(
            f"tritonserver not ready after {timeout:.0f}s"
            + (f"; see {self.log_file}" if self.log_file else "")
        )

    def begin_drain(self) -> None:
        """Send SIGTERM to tritonserver once, without waiting: it closes its HTTP port at once
        (readiness probes fail), refuses new inferences and lets those in flight finish."""
        proc = self.process
        if proc is not None and proc.poll() is None and not self._draining:
            proc.send_signal(signal.SIGTERM)
            self._draining = True

    def drain(self, timeout: float | None = None) -> int | None:
        """Graceful stop: begin_drain(), wait until tritonserver exits (its in-flight requests
        done), at most `timeout` seconds (default: drain_timeout_s plus a margin), then kill the
        whole process group. Returns tritonserver's exit code (None if it had to be killed or
        was not running)."""
        proc = self.process
        code = None
        if proc is not None:
            self.begin_drain()
            try:
                code = proc.wait(self.drain_timeout_s + 15 if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return code

    def kill(self) -> None:
        """Hard stop: SIGKILL to the server's whole process group (tritonserver and every
        Python-backend stub, even one whose tritonserver already exited), then remove the
        scratch directory."""
        proc, self.process = self.process, None
        self._draining = False
        if proc is not None:
            kill_process_group(proc.pid)
            proc.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server (drain for up to `timeout` seconds, default drain_timeout_s plus a
        margin, then SIGKILL its process group) and remove its scratch directory."""
        self.drain(timeout)

    def __enter__(self) -> EmbeddedTritonServer:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _StopRequested(Exception):
    """Raised in the main thread by the first SIGTERM/SIGHUP/SIGINT."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


def _install_stop_handlers() -> None:
    """The first stop signal raises _StopRequested; later ones are ignored while stopping."""

    def handler(signum: int, _frame) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise _StopRequested(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)


def watch_parent(interval_s: float = 0.5) -> threading.Thread:
    """A daemon thread that sends SIGTERM to this process when its parent process dies
    (the process is re-parented, so getppid() changes)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="parent-watchdog", daemon=True)
    thread.start()
    return thread


def main(argv: list[str] | None = None) -> int:
    """`python -m reranker_server.embedded`: run the server in the foreground (make serve).

    Exits with the server's exit code, or 0 after a clean stop on SIGTERM, SIGHUP, SIGINT or the
    death of this process's parent; the server is drained (see EmbeddedTritonServer.drain), then
    stopped, and its scratch directory removed."""
    parser = argparse.ArgumentParser(description="Serve a model repository on the embedded Triton server")
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--log-verbose", type=int, default=0)
    parser.add_argument(
        "--drain-timeout-s",
        type=float,
        default=DRAIN_TIMEOUT_S,
        help="on a stop signal, in-flight requests get this long to finish (default %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.drain_timeout_s <= 0:
        parser.error(f"--drain-timeout-s must be positive, got {args.drain_timeout_s}")
    server = EmbeddedTritonServer(
        args.model_repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
        drain_timeout_s=args.drain_timeout_s,
    )
    if not server.model_repository.is_dir():
        print(f"error: model repository not found: {server.model_repository}", file=sys.stderr)
        return 2
    _install_stop_handlers()
    try:
        watch_parent()
        print("starting:", " ".join(server.command()), flush=True)
        proc = server.launch(stdout=sys.stdout)
        return proc.wait()
    except _StopRequested as stop:
        print(
            f"{stop}: stopping tritonserver (not ready now; requests in flight get up to "
            f"{server.drain_timeout_s:g}s to finish)",
            file=sys.stderr,
            flush=True,
        )
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
