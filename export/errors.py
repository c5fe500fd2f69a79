"""Errors that the export CLI reports as one clear line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ExportError(Exception):
    """An export that cannot proceed: unsupported model, missing path, hub unreachable, ..."""


def require_ints(checks: Iterable[tuple[str, Any, int]]) -> None:
    """ExportError for the first (label, value, lowest) whose value is not an integer >= lowest."""
    for label, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ExportError(f"{label} must be an integer >= {low}, not {value!r}")
