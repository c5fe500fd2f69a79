"""docs/api.md's flag table lists exactly the flags `python -m reranker_api` takes."""

from __future__ import annotations

import re
from pathlib import Path

from reranker_api.settings import parser

PAGE = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def documented_flags(text: str) -> set[str]:
    """`--flag` names in the first column of the table whose header starts with 'flag'."""
    table = re.search(r"^\| flag \|.*?(?=\n\n|\Z)", text, re.M | re.S).group(0)
    return {
        flag
        for cell in re.findall(r"^\| ([^|]+) \|", table, re.M)
        for flag in re.findall(r"`(--[\w-]+)`", cell)
    }


def test_flag_table_matches_the_cli():
    cli = {o for action in parser()._actions for o in action.option_strings if o.startswith("--")}
    assert documented_flags(PAGE.read_text()) == cli - {"--help"}


def test_the_table_parser_reads_first_columns_only():
    text = "| flag | meaning |\n|---|---|\n| `--host`, `--port` | see `--model` |\n\nafter `--x`"
    assert documented_flags(text) == {"--host", "--port"}
