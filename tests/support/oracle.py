"""Client side of the FlagEmbedding oracle: runs tests/oracle/flagembedding_oracle.py in the
isolated oracle environment (`.venv-oracle`, or $RERANKER_ORACLE_PYTHON)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ORACLE_SCRIPT = REPO / "tests" / "oracle" / "flagembedding_oracle.py"


def oracle_python() -> str:
    return os.environ.get("RERANKER_ORACLE_PYTHON", str(REPO / ".venv-oracle" / "bin" / "python"))


def run_oracle(jobs: list[dict], timeout: float = 900) -> list[dict]:
    """Run FlagEmbedding on every job in one process; results in job order."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": "",
    }
    proc = subprocess.run(
        [oracle_python(), str(ORACLE_SCRIPT)],
        input=json.dumps(jobs),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"FlagEmbedding oracle failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)
