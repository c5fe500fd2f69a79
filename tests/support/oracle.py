"""Client side of the FlagEmbedding oracle: runs tests/oracle/flagembedding_oracle.py in the
isolated oracle environment (`.venv-oracle`, or $RERANKER_ORACLE_PYTHON)."""

from __future__ import annotations

from pathlib import Path

from bench.common import oracle_python, run_in_oracle_env

REPO = Path(__file__).resolve().parents[2]
ORACLE_SCRIPT = REPO / "tests" / "oracle" / "flagembedding_oracle.py"

__all__ = ["ORACLE_SCRIPT", "oracle_python", "run_oracle"]


def run_oracle(jobs: list[dict], timeout: float = 900) -> list[dict]:
    """Run FlagEmbedding on every job in one process; results in job order."""
    return run_in_oracle_env(ORACLE_SCRIPT, jobs, timeout, "FlagEmbedding oracle")
