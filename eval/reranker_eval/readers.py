"""Line-by-line readers of the input files (plain or .gz): JSON Lines, TREC runs, qrels.

Every reader streams its file and names `file:line` in the DataError of a bad line.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from reranker_eval.errors import DataError


def open_binary(path: Path) -> IO[bytes]:
    """The file opened for reading bytes; `.gz` files are decompressed on the fly."""
    if not path.is_file():
        raise DataError(path, None, "no such file")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line without its end) of each non-blank line, decoded as strict UTF-8."""
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataError(path, number, f"not valid UTF-8 (byte {exc.start} of the line)") from None
            if line.strip():
                yield number, line


def json_objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each line of a JSON Lines file."""
    for number, line in text_lines(path):
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, number, f"malformed JSON: {exc.msg} at column {exc.colno}") from None
        except (ValueError, RecursionError) as exc:
            raise DataError(path, number, f"malformed JSON: {exc}") from None
        if not isinstance(value, dict):
            raise DataError(path, number, f"expected a JSON object, got {type(value).__name__}")
        yield number, value


def string_field(path: Path, line: int, obj: dict[str, Any], *names: str, required: bool = True) -> str:
    """The first of `names` present in `obj`, as a string (an integer id is accepted as text)."""
    for name in names:
        value = obj.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise DataError(path, line, f"field {name!r} must be a string, not {type(value).__name__}")
        return str(value)
    if required:
        raise DataError(path, line, f"missing field {' or '.join(repr(n) for n in names)}")
    return ""


def trec_run(path: Path) -> Iterator[tuple[int, str, str, int, float]]:
    """(line, query id, document id, rank, score) of each line `qid Q0 docid rank score [tag]`."""
    for number, line in text_lines(path):
        cols = line.split()
        if len(cols) not in (5, 6):
            raise DataError(
                path, number, f"expected 6 columns 'qid Q0 docid rank score tag', got {len(cols)}"
            )
        try:
            rank = int(cols[3])
            score = float(cols[4])
        except ValueError:
            raise DataError(path, number, f"rank {cols[3]!r} and score {cols[4]!r} must be numbers") from None
        yield number, cols[0], cols[2], rank, score


def qrels_lines(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line, query id, document id, relevance) of a TREC qrels file (`qid 0 docid rel`) or a
    BEIR qrels TSV (`query-id corpus-id score`, with its header line)."""
    for number, line in text_lines(path):
        cols = line.split("\t") if "\t" in line else line.split()
        cols = [c.strip() for c in cols]
        if len(cols) not in (3, 4):
            raise DataError(
                path,
                number,
                f"expected 'query-id corpus-id score' or 'qid 0 docid rel', got {len(cols)} columns",
            )
        qid, docid, rel = (cols[0], cols[1], cols[2]) if len(cols) == 3 else (cols[0], cols[2], cols[3])
        try:
            relevance = int(rel)
        except ValueError:
            if number == 1 or (len(cols) == 3 and qid == "query-id"):
                continue  # the BEIR header line
            raise DataError(path, number, f"relevance {rel!r} must be an integer") from None
        yield number, qid, docid, relevance
