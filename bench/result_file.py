"""Where every benchmark leaves its results: one JSON file per run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_result(out: Path | str, result: dict[str, Any]) -> Path:
    """`result` as indented JSON at `out`, its folder created if missing; returns the path."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return path
