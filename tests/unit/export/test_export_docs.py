"""docs/export.md's option table lists exactly the options `python -m export` takes."""

from __future__ import annotations

import re
from pathlib import Path

from export.__main__ import parse_args

PAGE = Path(__file__).resolve().parents[3] / "docs" / "export.md"


def documented_options(text: str) -> set[str]:
    """`--option` names in the first column of the table whose header starts with 'option'."""
    table = re.search(r"^\| option \|.*?(?=\n\n)", text, re.M | re.S).group(0)
    return set(re.findall(r"^\| `(--[\w-]+)", table, re.M))


def test_option_table_matches_the_cli():
    cli = {"--" + dest.replace("_", "-") for dest in vars(parse_args(["--model", "x"]))}
    assert documented_options(PAGE.read_text()) == cli


def test_the_table_parser_reads_first_columns_only():
    text = (
        "| option | meaning |\n|---|---|\n| `--model` | see `--name` |\n| `--cpu-graph a\\|b` | x |\n\nafter"
    )
    assert documented_options(text) == {"--model", "--cpu-graph"}
