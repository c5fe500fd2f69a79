"""reranker_server.guard's pure parts: exit statuses and its command line. Its behaviour with real
processes: tests/integration/test_hard_stop.py and test_replicas.py."""

from __future__ import annotations

import os
import signal

import pytest

from reranker_server.embedded import EmbeddedTritonServer
from reranker_server.guard import exit_code, main


@pytest.mark.parametrize(
    ("returncode", "status"), [(0, 0), (3, 3), (-signal.SIGKILL, 137), (-6, 134), (None, 1)]
)
def test_exit_status_follows_the_shell_convention(returncode, status):
    assert exit_code(returncode) == status


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["--drain-timeout-s", "5", "--"])
    assert "no command to run" in capsys.readouterr().err


def test_the_server_runs_under_its_guard_with_the_drain_timeout(tmp_path):
    server = EmbeddedTritonServer(tmp_path, drain_timeout_s=7.5)
    try:
        guarded = server.guarded_command()
        assert guarded[1:4] == ["-m", "reranker_server.guard", "--drain-timeout-s=7.5"]
        split = guarded.index("--")
        assert guarded[split + 1 :] == server.command()
        assert "--exit-timeout-secs=8" in guarded[split + 1 :]
        assert f"--parent-pid={os.getpid()}" in guarded[:split]
        assert "--parent-death-signal" in guarded[:split]  # launched from the main thread
    finally:
        server.stop()
