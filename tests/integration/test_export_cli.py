"""`python -m export` as users run it: an installed command, from any directory."""

from __future__ import annotations

import os
import subprocess
import sys

from export.tiny.encoder import build_xlmr_reranker


def test_cli_runs_from_any_directory(tmp_path):
    """`python -m export` is installed (make setup: pip install -e .), not tied to the repo root."""
    checkpoint = build_xlmr_reranker(tmp_path / "ckpt", seed=5)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "--model",
            str(checkpoint),
            "--name",
            "m",
            "--repository",
            "repo",
            "--cpu-graph",
            "plain",
        ],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (elsewhere / "repo" / "m" / "configs" / "onnxruntime_trt.pbtxt").is_file()
