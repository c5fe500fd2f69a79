"""The one error type the command reports to the user (exit code 2), naming file and line."""

from __future__ import annotations

from pathlib import Path


class EvalError(Exception):
    """A problem the user must fix (bad input file, bad configuration, a server that refused)."""


class DataError(EvalError):
    """Bad content in an input file: the message starts with `file:line:`."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path, self.line = str(path), line
