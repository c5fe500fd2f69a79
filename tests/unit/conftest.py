"""Unit tests start no process, server or subprocess: any attempt fails the test that made it.

Whatever needs one (a Triton server, the oracle's interpreter, a CLI run, a listening socket)
belongs under tests/integration/."""

from __future__ import annotations

import multiprocessing.process
import platform
import socket
import subprocess

import numpy.testing  # noqa: F401  (runs `lscpu` once when first imported)
import pytest

# Standard-library answers that run a command the first time they are asked (`uname -p`), asked
# once here so that code under test may use them.
platform.processor()


class StartsAProcessError(AssertionError):
    """A unit test tried to start a process or a server."""


def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise StartsAProcessError(f"unit tests must not {what}; move this test under tests/integration/")

    return refuse


@pytest.fixture(autouse=True)
def no_processes_or_servers(monkeypatch):
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a subprocess"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", _refuse("start a process"))
    monkeypatch.setattr(socket.socket, "listen", _refuse("listen on a socket (start a server)"))
