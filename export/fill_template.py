"""Render the Triton config templates of export/templates/ (see export/templates/README.md).

A template is a whole `config.pbtxt`: every block and field is written in it, Python only
supplies values. Two kinds of markers:

- `${key}`: a value. Lists and tuples are written comma-separated (`gpus: [ ${gpus} ]`), bools
  as `true`/`false`, anything else with `str()`. Strings that pbtxt must quote are quoted by the
  caller with `pbtxt_string` (the template writes `string_value: ${manifest}`).
- a line `#if key` ... a line `#endif`: the lines between are kept when `values[key]` is truthy
  and dropped otherwise (optional fields and blocks: GPU list, warm-up, preferred batch sizes).
  Both marker lines are pbtxt comments and never reach the rendered file; blocks do not nest.

Every key the template names must be given and every given key must be used, so a template
and its caller cannot drift apart silently.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_BLOCK = re.compile(r"^#if (?P<key>\w+)[ \t]*\n(?P<body>.*?)^#endif[ \t]*\n", re.M | re.S)


def template_text(name: str) -> str:
    """The raw text of export/templates/<name>.pbtxt."""
    path = TEMPLATES_DIR / f"{name}.pbtxt"
    if not path.is_file():
        known = sorted(p.stem for p in TEMPLATES_DIR.glob("*.pbtxt"))
        raise KeyError(f"no config template {name!r}; known: {', '.join(known)}")
    return path.read_text()


def template_keys(text: str) -> set[str]:
    """Every key a template needs: its `${key}` placeholders and its `#if key` flags."""
    placeholders = {
        m.group("named") or m.group("braced")
        for m in string.Template.pattern.finditer(text)
        if m.group("named") or m.group("braced")
    }
    return placeholders | {m.group("key") for m in _BLOCK.finditer(text)}


def format_value(value: Any) -> str:
    """How a value is written into a template."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    return str(value)


def fill_template(name: str, values: Mapping[str, Any]) -> str:
    """Render export/templates/<name>.pbtxt with `values`; missing or unused keys are errors."""
    text = template_text(name)
    if re.search(r"^#(if|endif)\b", _BLOCK.sub("", text), re.M):
        raise ValueError(f"template {name}: unbalanced or nested #if/#endif")
    needed = template_keys(text)
    missing = needed - set(values)
    unused = set(values) - needed
    if missing or unused:
        raise KeyError(f"template {name}: missing {sorted(missing)}, unused {sorted(unused)}")
    kept = _BLOCK.sub(lambda m: m.group("body") if values[m.group("key")] else "", text)
    return string.Template(kept).substitute({k: format_value(v) for k, v in values.items()})


def pbtxt_string(value: str) -> str:
    """A protobuf text-format string literal (quotes included)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
