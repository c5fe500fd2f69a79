"""Fill the Triton config templates in export/templates/ (`${name}` placeholders).

Every placeholder must be given and every given value must be used, so a template and its
caller cannot drift apart silently.
"""
from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any, Mapping

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def template_placeholders(text: str) -> set[str]:
    return {m.group("named") or m.group("braced")
            for m in string.Template.pattern.finditer(text)
            if m.group("named") or m.group("braced")}


def fill_template(name: str, values: Mapping[str, Any]) -> str:
    """Render export/templates/<name>.pbtxt with `values`; missing or unused keys are errors."""
    text = (TEMPLATES_DIR / f"{name}.pbtxt").read_text()
    needed = template_placeholders(text)
    missing = needed - set(values)
    unused = set(values) - needed
    if missing or unused:
        raise KeyError(f"template {name}: missing {sorted(missing)}, unused {sorted(unused)}")
    rendered = string.Template(text).substitute({k: str(v) for k, v in values.items()})
    return re.sub(r"\n{3,}", "\n\n", rendered)


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal (quotes included)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
