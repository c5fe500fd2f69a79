"""docs/benchmarks.md states, before each table of figures, the machine it ran on, the date and the
command that reproduces it (within the table's section)."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[3] / "docs" / "benchmarks.md"

SECTION = re.compile(r"^#{2,3} .*$", re.M)
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
ONE_NUMBER = r"[*~]*[-+]?\d[\d.,]*\s*(%|x|s|ms|MB|GB|B)?[*]*"
NUMBER = re.compile(rf"{ONE_NUMBER}(\s*/\s*{ONE_NUMBER})*(\s*\(.*\))?")  # 7.88, 0.71 / 0.75, 0.29 (mean 0.15)
MACHINE = re.compile(r"Machine \*\*\w+\*\*")
DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")
COMMAND = re.compile(r"Command:\s+`[^`]+`")


def figure_tables(section: str) -> list[int]:
    """Offsets of the tables in `section` that hold measured figures (a row with two numbers)."""
    offsets = []
    for table in re.finditer(r"(?:^\|.*\|\n?)+", section, re.M):
        rows = [r.strip().strip("|").split("|") for r in table.group(0).splitlines()[2:]]
        if any(sum(bool(NUMBER.fullmatch(c.strip())) for c in row) >= 2 for row in rows):
            offsets.append(table.start())
    return offsets


def unlabelled_tables(text: str) -> list[str]:
    """Headings of sections with a table of figures not preceded by machine, date and command."""
    text = FENCE.sub("", text)
    starts = [m.start() for m in SECTION.finditer(text)] + [len(text)]
    problems = []
    for begin, end in zip(starts, starts[1:]):
        section = text[begin:end]
        for offset in figure_tables(section):
            before = section[:offset]
            if not (MACHINE.search(before) and DATE.search(before) and COMMAND.search(before)):
                problems.append(section.splitlines()[0])
    return problems


def test_every_table_of_figures_names_machine_date_and_command():
    assert figure_tables(FENCE.sub("", PAGE.read_text())) != []  # the page has figures at all
    assert unlabelled_tables(PAGE.read_text()) == []


def test_the_check_finds_a_table_without_its_machine():
    labelled = (
        "## A\n\nMachine **Xeon**, 2026-11-28. Command: `make bench`.\n\n"
        "| path | pairs/s | x FE |\n| --- | ---: | ---: |\n| fused | 7.88 | **2.82** |\n"
    )
    unlabelled = "## B\n\nSome prose.\n\n| path | pairs/s | x FE |\n|---|---|---|\n| int8 | 21.9 | 7.8x |\n"
    descriptive = "## C\n\n| path | what runs |\n|---|---|\n| token | the client tokenizes |\n"
    assert unlabelled_tables(labelled + unlabelled + descriptive) == ["## B"]
