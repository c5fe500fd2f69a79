"""`python -m reranker_server.guard --drain-timeout-s N -- tritonserver ...`: the leader of a
server's process group, so that nothing of the server outlives it.

Started in its own session by EmbeddedTritonServer, it runs tritonserver as its child in the
same process group; tritonserver's Python-backend stubs are in that group too. Whatever ends it
-- SIGTERM/SIGINT/SIGHUP, the death of the process that started it (a SIGKILLed launcher), or
tritonserver exiting or crashing on its own -- it ends the same way:

1. tritonserver gets one SIGTERM (it stops being ready, refuses new requests, finishes those in
   flight) unless it already exited;
2. it gets `drain timeout + margin` seconds to exit (Triton 2.51 can hang in its own exit after
   --exit-timeout-secs expires, keeping every stub and its model in memory);
3. every process left in the group (tritonserver, stubs) gets SIGKILL, and the guard exits with
   tritonserver's exit code (128 + signal number when a signal ended it).

It must start fast and stay small: it imports only the standard library and `embedded`'s
stdlib-only helpers.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

from reranker_server.embedded import parent_death_signal, set_parent_death_signal
from reranker_server.process_tree import group_members

EXIT_MARGIN_S = 10.0  # beyond the drain timeout: Triton's own unload and exit
POLL_S = 0.2


def kill_group_except_self() -> None:
    """SIGKILL every other live member of this process's group."""
    me = os.getpid()
    for pid in group_members(os.getpgrp()):
        if pid != me:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def exit_code(returncode: int | None) -> int:
    """A shell-style exit status for a child's Popen returncode."""
    if returncode is None:
        return 1
    return 128 - returncode if returncode < 0 else returncode


def run(
    command: list[str], drain_timeout_s: float, parent: int | None = None, death_signal: bool = False
) -> int:
    """Run `command` as the guarded child; see the module docstring. `parent`: the process whose
    death stops the server (default: this one's parent); `death_signal`: also ask the kernel for
    SIGTERM when the thread that started this process exits."""
    stop_requested: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    if death_signal:
        set_parent_death_signal(signal.SIGTERM)
    parent = os.getppid() if parent is None else parent
    child = subprocess.Popen(command, preexec_fn=parent_death_signal(signal.SIGKILL))
    deadline = None
    while child.poll() is None:
        if deadline is None and (stop_requested or os.getppid() != parent):
            child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + drain_timeout_s + EXIT_MARGIN_S
        if deadline is not None and time.monotonic() > deadline:
            print(
                f"guard: tritonserver still running {drain_timeout_s + EXIT_MARGIN_S:.0f}s "
                "after SIGTERM: killing it",
                file=sys.stderr,
                flush=True,
            )
            break
        time.sleep(POLL_S)
    kill_group_except_self()
    return exit_code(child.wait())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run tritonserver so that nothing of it outlives this process"
    )
    parser.add_argument("--drain-timeout-s", type=float, required=True)
    parser.add_argument("--parent-pid", type=int, default=None, help="stop when this process is gone")
    parser.add_argument(
        "--parent-death-signal", action="store_true", help="SIGTERM from the kernel when the parent dies"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- the server command")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command to run after --")
    return run(command, args.drain_timeout_s, args.parent_pid, args.parent_death_signal)


if __name__ == "__main__":
    sys.exit(main())
