"""The report as an aligned terminal table; the best value of each column is marked with `*`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

BEST = "*"


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _columns(report: dict[str, Any]) -> list[tuple[str, Callable[[dict], float | None], int, bool]]:
    """(header, value of a row, decimals, higher is better)."""
    cols: list[tuple[str, Callable[[dict], float | None], int, bool]] = [
        (m, (lambda r, m=m: r["metrics"][m]), 4, True) for m in report["measures"]
    ]
    cols += [
        ("pairs/s", lambda r: r.get("pairs_per_s"), 1, True),
        ("p50 ms", lambda r: (r.get("latency_ms") or {}).get("p50"), 1, False),
        ("p95 ms", lambda r: (r.get("latency_ms") or {}).get("p95"), 1, False),
        ("tau vs ref", lambda r: (r.get("agreement") or {}).get("kendall_tau"), 3, True),
    ]
    return cols


def render(report: dict[str, Any]) -> str:
    """The table, one line per row, with a legend."""
    rows = report["rows"]
    cols = _columns(report)
    header = ["configuration", *[c[0] for c in cols], "front"]
    lines = []
    for row in rows:
        cells = [row["label"]]
        for name, get, digits, higher in cols:
            value = get(row)
            candidates = [
                get(r) for r in rows if get(r) is not None and not (name == "tau vs ref" and _is_reference(r))
            ]
            best = (max(candidates) if higher else min(candidates)) if candidates else None
            text = _fmt(value, digits)
            if name == "tau vs ref" and _is_reference(row):
                text = "ref"
            elif value is not None and best is not None and value == best and len(candidates) > 1:
                text += BEST
            cells.append(text)
        cells.append("yes" if row.get("pareto") else "")
        lines.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(cells) for cells in lines]
    data = report["dataset"]
    out.append(
        f"{BEST} best of the column; front: on the Pareto front of {report['quality_measure']} vs pairs/s; "
        f"tau: Kendall's tau-b vs the fullest configuration of the same model (ref). "
        f"{data['queries']} queries, {data['pairs']} pairs."
    )
    out.append(f"client: {report['machine']['client_cpu']}, {report['date']}")
    return "\n".join(out)


def _is_reference(row: dict[str, Any]) -> bool:
    agreement = row.get("agreement") or {}
    return agreement.get("reference") == row["label"]
