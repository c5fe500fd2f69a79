"""The Pareto front of (throughput, quality): the configurations no other one beats on both."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (x, y) point, higher better on both axes: True when no other point is at least as
    good on both and strictly better on one."""

    def dominated(i: int) -> bool:
        x, y = points[i]
        return any(
            (ox >= x and oy >= y) and (ox > x or oy > y) for j, (ox, oy) in enumerate(points) if j != i
        )

    return [not dominated(i) for i in range(len(points))]
