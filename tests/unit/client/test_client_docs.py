"""docs/client.md's constructor table lists exactly the keyword arguments RerankerClient and
AsyncRerankerClient.connect take."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from reranker_client import AsyncRerankerClient, RerankerClient

PAGE = Path(__file__).resolve().parents[3] / "docs" / "client.md"


def documented_keywords(text: str) -> set[str]:
    """Backticked names in the first column of the table under '## Constructor'."""
    section = text.split("## Constructor", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in re.findall(r"^\| ([^|]+) \|", section, re.M):
        names.update(re.findall(r"`(\w+)`", row))
    return names - {"keyword"}


def keyword_only(function) -> set[str]:
    params = inspect.signature(function).parameters.values()
    return {p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}


def test_constructor_table_matches_the_signatures():
    documented = documented_keywords(PAGE.read_text())
    assert documented == keyword_only(RerankerClient.__init__)
    assert documented == keyword_only(AsyncRerankerClient.connect)


def test_the_table_parser_sees_a_missing_keyword():
    text = (
        "## Constructor\n\n| keyword | default |\n|---|---|\n| `timeout_s` | 120 |\n\n## Calls\n| `x` | y |\n"
    )
    assert documented_keywords(text) == {"timeout_s"}
