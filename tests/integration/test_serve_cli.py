"""`make serve` = `python -m reranker_server.embedded`: serves a repository in the foreground,
answers on the given ports, and stops cleanly on Ctrl-C."""

import signal
import subprocess
import sys
import time
import urllib.request

from tests.support.ports import free_ports


def test_serve_command_serves_the_repository_and_stops_on_interrupt(test_repository):
    http, grpc, metrics = free_ports(3)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reranker_server.embedded",
            "--model-repository",
            str(test_repository.root),
            "--http-port",
            str(http),
            "--grpc-port",
            str(grpc),
            "--metrics-port",
            str(metrics),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 300
        ready = False
        while time.monotonic() < deadline and proc.poll() is None and not ready:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http}/v2/models/tiny-encoder/ready", timeout=2
                ) as r:
                    ready = r.status == 200
            except OSError:
                time.sleep(0.5)
        assert ready, "model never became ready"
        from reranker_client import RerankerClient

        with RerankerClient(f"localhost:{grpc}", "tiny-encoder") as client:
            assert len(client.compute_score([["q", "p"], ["a", "b"]])) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=120)[0].decode(errors="replace")
    assert "starting:" in out and "--model-config-name=embedded" in out


def test_serve_command_rejects_a_missing_repository(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "reranker_server.embedded", "--model-repository", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "model repository not found" in proc.stderr
