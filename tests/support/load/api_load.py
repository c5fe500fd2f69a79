"""Load through the rerank HTTP API: worker threads, each with its own HTTP connection, send TEI,
Cohere and NIM requests for several models; every returned score is checked against the same
(query, passage) scored alone on Triton's text model. Used by tests/integration/test_api_load.py
(bounded) and its fault test (Triton killed and restarted under load)."""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
import numpy as np

SHAPES = ("tei", "tei-raw", "cohere-v2", "cohere-v1", "nim")


def reference_scores(
    grpc_url: str, models: dict[str, dict], queries: Sequence[str], passages: Sequence[str]
) -> dict[tuple[str, int, int], float]:
    """Raw logit of every (model, query, passage), each pair ALONE in its request, one at a time,
    straight on the `<model>-text` Triton model; `models` maps each model to its request options."""
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(grpc_url)
    out = {}
    try:
        for model, options in models.items():
            for qi, q in enumerate(queries):
                for pi, p in enumerate(passages):
                    query = grpcclient.InferInput("query", [1], "BYTES")
                    query.set_data_from_numpy(np.array([q.encode()], dtype=np.object_))
                    passage = grpcclient.InferInput("passages", [1], "BYTES")
                    passage.set_data_from_numpy(np.array([p.encode()], dtype=np.object_))
                    result = client.infer(
                        model + "-text",
                        [query, passage],
                        outputs=[grpcclient.InferRequestedOutput("scores")],
                        parameters=dict(options) or None,
                    )
                    out[(model, qi, pi)] = float(result.as_numpy("scores")[-1, 0])
    finally:
        client.close()
    return out


def request_for(shape: str, model: str, query: str, docs: list[str], options: dict) -> tuple[str, dict]:
    """The request in one wire shape; `options` are extra fields (e.g. max_length)."""
    if shape.startswith("tei"):
        return "/rerank", {
            "model": model,
            "query": query,
            "texts": docs,
            "raw_scores": shape == "tei-raw",
            **options,
        }
    if shape.startswith("cohere"):
        return f"/{shape[-2:]}/rerank", {"model": model, "query": query, "documents": docs, **options}
    return "/v1/ranking", {
        "model": model,
        "query": {"text": query},
        "passages": [{"text": d} for d in docs],
        "truncate": "END",
        **options,
    }


def scores_of(shape: str, body) -> dict[int, float]:
    if shape.startswith("tei"):
        return {x["index"]: x["score"] for x in body}
    if shape.startswith("cohere"):
        return {x["index"]: x["relevance_score"] for x in body["results"]}
    return {x["index"]: x["logit"] for x in body["rankings"]}


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


@dataclass
class ApiLoadReport:
    ok: int = 0
    pairs: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)  # non-200 answers that break the rules
    mismatches: list[str] = field(default_factory=list)
    unavailable: int = 0  # clean 503s (with Retry-After)
    ok_after_mark: int = 0  # successes after mark() was called
    max_abs_diff: float = 0.0
    _marked: bool = False

    def mark(self) -> None:
        self._marked = True

    def summary(self) -> dict:
        return {
            "ok": self.ok,
            "pairs": self.pairs,
            "statuses": self.statuses,
            "unavailable_503": self.unavailable,
            "failures": len(self.failures),
            "mismatches": len(self.mismatches),
            "max_abs_diff": self.max_abs_diff,
            "first_failures": self.failures[:3],
            "first_mismatches": self.mismatches[:3],
        }


def run_api_load(
    base_url: str,
    headers: dict[str, str],
    models: dict[str, dict],
    queries: Sequence[str],
    passages: Sequence[str],
    reference: dict,
    *,
    workers: int = 6,
    max_requests: int = 120,
    duration_s: float = 300.0,
    seed: int = 0,
    allow_503: bool = False,
    stop: threading.Event | None = None,
    report: ApiLoadReport | None = None,
    tolerance: float = 1e-4,
) -> ApiLoadReport:
    """Drive the API until max_requests, duration_s or `stop`; check every score."""
    report = report if report is not None else ApiLoadReport()
    stop = stop or threading.Event()
    lock = threading.Lock()
    issued = [0]
    deadline = time.monotonic() + duration_s

    def take() -> bool:
        with lock:
            if stop.is_set() or issued[0] >= max_requests or time.monotonic() > deadline:
                return False
            issued[0] += 1
            return True

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            while take():
                shape, model = rng.choice(SHAPES), rng.choice(list(models))
                qi = rng.randrange(len(queries))
                chosen = [rng.randrange(len(passages)) for _ in range(rng.randint(1, 8))]
                path, body = request_for(
                    shape, model, queries[qi], [passages[i] for i in chosen], models[model]
                )
                try:
                    r = client.post(path, json=body)
                except httpx.HTTPError as exc:
                    with lock:
                        report.failures.append(f"{shape} {model}: {type(exc).__name__}: {exc}")
                    continue
                with lock:
                    report.statuses[r.status_code] = report.statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    clean_503 = (
                        r.status_code == 503
                        and r.headers.get("retry-after") is not None
                        and r.headers.get("content-type", "").startswith("application/json")
                    )
                    with lock:
                        if allow_503 and clean_503:
                            report.unavailable += 1
                        else:
                            report.failures.append(f"{shape} {model}: {r.status_code} {r.text[:300]}")
                    if clean_503:
                        time.sleep(min(1.0, float(r.headers["retry-after"]) or 0.1))
                    continue
                got = scores_of(shape, r.json())
                diffs = []
                for pos, pi in enumerate(chosen):
                    want = reference[(model, qi, pi)]
                    if shape in ("tei", "cohere-v2", "cohere-v1"):
                        want = sigmoid(want)
                    diffs.append(abs(got.get(pos, float("inf")) - want))
                worst = max(diffs)
                with lock:
                    report.ok += 1
                    report.pairs += len(chosen)
                    report.max_abs_diff = max(report.max_abs_diff, worst)
                    if report._marked:
                        report.ok_after_mark += 1
                    if len(got) != len(chosen) or worst > tolerance:
                        report.mismatches.append(
                            f"{shape} {model} q{qi} {chosen}: diff {worst:.3g}, got {got}"
                        )

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return report
