"""Long load run (`make soak`): `python -m tests.support.load.soak --duration 600`.

Builds the tiny test repository (or serves --repository), starts a private embedded Triton server
on free loopback ports, scores every pair alone, warms up, then drives --workers concurrent gRPC and
HTTP clients in windows until --duration / --requests, checking every score. With --kill-stub-every
it also kills a random model's Python-backend stub at that period and recovers it (unload + load)
while clients retry. Prints one JSON report; exit code 1 on any error, mismatch, lost request or
memory growth after warm-up above --rss-growth-mib.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from reranker_server.process_tree import tree_rss_mib
from tests.support.load.driver import (
    LoadConfig,
    LoadReport,
    pair_pool,
    reference_scores,
    run_load,
    warm_up_peak,
)
from tests.support.load.procs import is_alive, rss_by_model_mib, stub_pids
from tests.support.load.servers import start_private_server
from tests.support.load.targets import targets_for_repository


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tests.support.load.soak", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--duration", type=float, default=600.0, help="seconds of measured load")
    p.add_argument("--requests", type=int, default=1_000_000, help="stop after this many requests")
    p.add_argument("--workers", type=int, default=8, help="concurrent client threads (half gRPC, half HTTP)")
    p.add_argument("--window", type=float, default=60.0, help="seconds per memory sample window")
    p.add_argument(
        "--repository", type=Path, help="serve this model repository (default: build the tiny one)"
    )
    p.add_argument("--models", default="", help="comma-separated subset of the repository's models")
    p.add_argument("--max-length", type=int, default=None, help="truncation length for every model")
    p.add_argument("--kill-stub-every", type=float, default=0.0, help="seconds between stub kills (0: none)")
    p.add_argument("--rss-growth-mib", type=float, default=64.0, help="allowed RSS growth after warm-up")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the report here")
    return p.parse_args(argv)


def fault_injector(server, models: list[str], every: float, stop: threading.Event, log: list[dict]) -> None:
    """Kill a random model's stub every `every` seconds, then recover it with unload + load."""
    import tritonclient.grpc as grpcclient

    admin = grpcclient.InferenceServerClient(server.grpc_url)
    rng = random.Random(7)
    while not stop.wait(every):
        model = rng.choice(models)
        stubs = stub_pids(server.server_pid, model)
        if not stubs:
            continue
        os.kill(stubs[0], signal.SIGKILL)
        while is_alive(stubs[0]):
            time.sleep(0.05)
        began = time.monotonic()
        admin.unload_model(model)
        while admin.is_model_ready(model):
            time.sleep(0.05)
        admin.load_model(model)
        log.append(
            {
                "model": model,
                "killed_pid": stubs[0],
                "recovered": admin.is_model_ready(model),
                "recovery_s": round(time.monotonic() - began, 2),
            }
        )
    admin.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from reranker_client import RerankerClient
    from reranker_client.retry import RetryPolicy

    workdir = Path(tempfile.mkdtemp(prefix="reranker-soak-"))
    root = args.repository
    if root is None:
        from tests.support.repository import build_repository

        root = build_repository(workdir / "repository", workdir / "checkpoints").root
    targets = targets_for_repository(root, [m for m in args.models.split(",") if m] or None, args.max_length)
    models = sorted({t.model for t in targets})
    server = start_private_server(root, workdir, "soak", models)
    retry = RetryPolicy(attempts=12, backoff_base_s=0.2, backoff_max_s=2.0, deadline_s=120.0)

    def make(model: str, protocol: str):
        url = server.grpc_url if protocol == "grpc" else server.http_url
        return RerankerClient(url, model, protocol, model_repository=str(root), retry=retry)

    faults: list[dict] = []
    stop = threading.Event()
    try:
        pool = pair_pool()
        reference = reference_scores(make, targets, pool)
        warm_up_peak(make, targets, pool, workers=args.workers)
        run_load(
            make,
            LoadConfig(
                targets,
                workers=args.workers,
                max_requests=20 * len(targets),
                duration_s=args.window,
                seed=args.seed + 1,
            ),
            pool,
            reference,
        )
        rss_after_warmup = tree_rss_mib(server.server_pid)
        injector = None
        if args.kill_stub_every > 0:
            injector = threading.Thread(
                target=fault_injector, args=(server, models, args.kill_stub_every, stop, faults)
            )
            injector.start()
        total, windows = LoadReport(), []
        end = time.monotonic() + args.duration
        window = 0
        while time.monotonic() < end and total.requests + len(total.errors) < args.requests:
            window += 1
            budget = args.requests - total.requests - len(total.errors)
            rep = run_load(
                make,
                LoadConfig(
                    targets,
                    workers=args.workers,
                    max_requests=budget,
                    duration_s=min(args.window, end - time.monotonic()),
                    seed=args.seed + 10 + window,
                ),
                pool,
                reference,
                server_pid=server.server_pid,
            )
            windows.append(
                {
                    "window": window,
                    **{
                        k: rep.summary()[k]
                        for k in ("requests", "errors", "mismatches", "p99_ms", "rss_mib_last")
                    },
                    "rss_by_process_mib": rss_by_model_mib(server.server_pid),
                }
            )
            print(json.dumps(windows[-1]), file=sys.stderr, flush=True)
            total.requests += rep.requests
            total.pairs += rep.pairs
            total.errors += rep.errors
            total.mismatches += rep.mismatches
            total.latencies_s += rep.latencies_s
            total.max_abs_diff = max(total.max_abs_diff, rep.max_abs_diff)
            total.wall_s += rep.wall_s
            for k, v in rep.by_protocol.items():
                total.by_protocol[k] = total.by_protocol.get(k, 0) + v
            total.rss_mib += rep.rss_mib
        stop.set()
        if injector is not None:
            injector.join()
        rss_end = tree_rss_mib(server.server_pid)
    finally:
        stop.set()
        server.stop()
    growth = rss_end - rss_after_warmup
    report = {
        "targets": [str(t) for t in targets],
        **total.summary(),
        "rss_mib_after_warmup": round(rss_after_warmup, 1),
        "rss_mib_end": round(rss_end, 1),
        "rss_growth_mib": round(growth, 1),
        "faults": faults,
        "windows": windows,
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    ok = (
        not total.errors
        and not total.mismatches
        and growth <= args.rss_growth_mib
        and all(f["recovered"] for f in faults)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
