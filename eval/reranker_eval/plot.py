"""The quality-vs-throughput plot: a point per configuration, labelled, the Pareto front drawn
and the first stage as a horizontal line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FONT = 7  # points


def label_points(ax: Any, points: list[tuple[str, float, float]]) -> None:
    """A label beside each point, moved down (with a leader line) while it would overlap a label
    already placed; highest points first."""
    ax.figure.canvas.draw()  # fixes the axes' transform
    placed: list[tuple[float, float, float, float]] = []  # x0, y0, x1, y1 in display pixels
    scale = ax.figure.dpi / 72.0
    height = FONT * 1.4 * scale
    for label, x, y in sorted(points, key=lambda p: -p[2]):
        px, py = ax.transData.transform((x, y))
        width = FONT * 0.55 * len(label) * scale
        dy = 3.0 * scale
        for _ in range(60):
            box = (px + 5 * scale, py + dy, px + 5 * scale + width, py + dy + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
            dy -= height
        placed.append(box)
        ax.annotate(
            label,
            (x, y),
            textcoords="offset points",
            xytext=(5, dy / scale),
            fontsize=FONT,
            arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.5} if dy < 0 else None,
        )


def plot(report: dict[str, Any], path: Path) -> None:
    """Write the PNG of `report` to `path`."""
    measure = report["quality_measure"]
    rows = [r for r in report["rows"] if r.get("pairs_per_s")]
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    for row in report["rows"]:
        if row["kind"] == "first stage":
            ax.axhline(row["metrics"][measure], color="grey", linestyle="--", linewidth=1)
            ax.annotate(
                row["label"],
                (0.01, row["metrics"][measure]),
                xycoords=("axes fraction", "data"),
                textcoords="offset points",
                xytext=(0, 4),
                fontsize=8,
                color="grey",
            )
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r["pairs_per_s"])
    others = [r for r in rows if not r.get("pareto")]
    ax.scatter(
        [r["pairs_per_s"] for r in others],
        [r["metrics"][measure] for r in others],
        color="tab:blue",
        zorder=3,
    )
    ax.scatter(
        [r["pairs_per_s"] for r in front],
        [r["metrics"][measure] for r in front],
        color="tab:red",
        s=60,
        zorder=4,
        label="Pareto front",
    )
    if len(front) > 1:
        ax.plot(
            [r["pairs_per_s"] for r in front],
            [r["metrics"][measure] for r in front],
            color="tab:red",
            zorder=2,
        )
    if rows and max(r["pairs_per_s"] for r in rows) > 10 * min(r["pairs_per_s"] for r in rows):
        ax.set_xscale("log")
    ax.margins(x=0.08, y=0.08)
    label_points(ax, [(r["label"], r["pairs_per_s"], r["metrics"][measure]) for r in rows])
    ax.set_xlabel("throughput (pairs/s, one request at a time)")
    ax.set_ylabel(measure)
    data = report["dataset"]
    ax.set_title(f"{data['name']}: {data['queries']} queries, {data['pairs']} pairs", fontsize=10)
    ax.grid(True, alpha=0.3)
    if front:
        ax.legend(loc="lower left", fontsize=8)
    fig.text(0.01, 0.005, f"{report['machine']['client_cpu']}, {report['date']}", fontsize=6, color="grey")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
