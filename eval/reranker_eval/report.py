"""The report: one row per configuration (the first stage first) with quality, speed, score
agreement and Pareto membership; written as JSON, read back by the table and the plot."""

from __future__ import annotations

import datetime
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reranker_eval.dataset import Dataset
from reranker_eval.metrics import evaluate, mean_kendall_tau
from reranker_eval.pareto import pareto_front
from reranker_eval.runner import ConfigScores

FIRST_STAGE = "first stage"


def cpu_model() -> str:
    """The CPU model name (Linux), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def references(results: Sequence[ConfigScores]) -> dict[str, ConfigScores]:
    """Per agreement group, its fullest configuration (the first listed among equals)."""
    best: dict[str, ConfigScores] = {}
    for result in results:
        group = result.config.group
        if group not in best or result.config.fullness() > best[group].config.fullness():
            best[group] = result
    return best


def speed(result: ConfigScores) -> dict[str, Any]:
    """Pairs per second (pairs / summed request time, one request at a time) and request latency."""
    latency = np.asarray(result.latency_s, dtype=float)
    if latency.size == 0:
        return {"pairs_per_s": None, "latency_ms": {"p50": None, "p95": None}, "requests": 0}
    return {
        "pairs_per_s": float(result.pairs / latency.sum()),
        "latency_ms": {
            "p50": float(np.percentile(latency, 50) * 1000),
            "p95": float(np.percentile(latency, 95) * 1000),
        },
        "requests": int(latency.size),
    }


def build_report(
    dataset: Dataset,
    measures: Sequence[Any],
    results: Sequence[ConfigScores],
    first_stage_name: str,
    command: Sequence[str] = (),
) -> dict[str, Any]:
    """The whole report as JSON-ready data."""
    names = [str(m) for m in measures]
    rows: list[dict[str, Any]] = [
        {
            "label": f"{FIRST_STAGE} ({first_stage_name})",
            "kind": FIRST_STAGE,
            "metrics": evaluate(measures, dataset.qrels, dataset.first_stage_run()),
        }
    ]
    refs = references(results)
    for result in results:
        ref = refs[result.config.group]
        grouped = sum(r.config.group == result.config.group for r in results) > 1
        tau = mean_kendall_tau(result.scores, ref.scores) if grouped else None
        rows.append(
            {
                "label": result.config.label,
                "kind": "reranker",
                "config": result.config.describe(),
                "group": result.config.group,
                "metrics": evaluate(measures, dataset.qrels, result.run),
                **speed(result),
                "agreement": {"reference": ref.config.label if grouped else None, "kendall_tau": tau},
                "scored_now": result.scored_now,
                "cached": len(dataset.queries) - result.scored_now,
            }
        )
    rerankers = [r for r in rows if r["kind"] != FIRST_STAGE and r["pairs_per_s"] is not None]
    front = pareto_front([(r["pairs_per_s"], r["metrics"][names[0]]) for r in rerankers])
    for row, on_front in zip(rerankers, front):
        row["pareto"] = on_front
    return {
        "dataset": {
            "name": dataset.name,
            "queries": len(dataset.queries),
            "pairs": dataset.pairs,
            "notes": dataset.notes,
        },
        "measures": names,
        "quality_measure": names[0],
        "rows": rows,
        "machine": {
            "client_cpu": cpu_model(),
            "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        },
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": list(command),
        "speed_note": "one request at a time from this client; pairs/s = pairs / summed request time; "
        "latency per request",
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


def write_trec_runs(results: Sequence[ConfigScores], directory: Path) -> dict[str, Path]:
    """Each configuration's reranked run as a TREC run file (for trec_eval and other tools),
    named by its key; returns label -> path."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for result in results:
        path = directory / f"{result.config.key}.trec"
        tag = "reranker_eval"
        with open(path, "w", encoding="utf-8") as out:
            for qid, docs in result.run.items():
                ranked = sorted(docs.items(), key=lambda kv: -kv[1])
                for rank, (docid, score) in enumerate(ranked, 1):
                    out.write(f"{qid} Q0 {docid} {rank} {score!r} {tag}\n")
        paths[result.config.label] = path
    return paths
