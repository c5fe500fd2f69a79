"""Scale-out through the rerank API's endpoint pool: throughput with 1, 2 and 3 replicas behind one
API, and a slow replica's effect on latency, on latency-bound replicas (bench.fake_triton: each
request waits `latency` with at most `capacity` at a time, like a Triton with that many model
instances), so that a 2-core machine measures the balancer and the API, not a model.

    python -m bench.replicas [--latency-ms 40] [--capacity 2] [--concurrency 24]
                             [--rounds 3] [--seconds 4]
    make bench-replicas

One fake process serves four replicas (three fast ones and one ten times slower). Five API
processes run side by side: in front of 1, 2 and 3 fast replicas, of the 2 fast ones alone, and
of the 2 fast ones + the slow one. Each round measures every API in turn (the order rotates per
round, so load from other processes hits all alike) with the same closed-loop load: `concurrency`
aiohttp callers sending a TEI /rerank of 1 query x 10 documents. Reported per API: requests/s
(median over rounds), p50/p99 latency, and the API process's CPU per request; then the scaling
(requests/s of n replicas / n x that of one; each replica serves at most capacity/latency
requests/s) and the p99 with the slow replica over the p99 without it.
Results: bench/results/replicas.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import procstats
from bench.ort_variants import machine_info
from bench.result_file import write_result

RESULTS = Path(__file__).resolve().parent / "results"
DOCUMENTS = [f"passage {i} about pandas and bamboo" for i in range(10)]
SLOW_FACTOR = 10


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for(url: str, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{what} did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def start_fakes(
    ports: Sequence[int], latencies_ms: Sequence[float], capacity: int, log: Path
) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fake_triton",
            "--ports",
            ",".join(map(str, ports)),
            "--latency-ms",
            ",".join(map(str, latencies_ms)),
            "--capacity",
            str(capacity),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "serving" not in (log.read_text() if log.exists() else ""):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the fake replicas did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    return proc


def start_api(triton_url: str, log: Path, source: Path | None = None) -> tuple[subprocess.Popen, str]:
    """`python -m reranker_api` in front of `triton_url`; from the checkout `source` (its api/ and
    core/) when given, else the installed one."""
    (port,) = free_ports(1)
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(source / "api"), str(source / "core"), env.get("PYTHONPATH", "")]
        )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reranker_api",
            "--triton-url",
            triton_url,
            "--port",
            str(port),
            "--model",
            "fake",
            "--no-access-log",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(url + "/health", proc, log, "the API")
    return proc, url


async def closed_loop(url: str, concurrency: int, seconds: float) -> tuple[list[float], float]:
    """`concurrency` callers sending requests back to back for `seconds`: latencies and wall time."""
    import aiohttp

    body = json.dumps({"query": "what is a panda?", "texts": DOCUMENTS}).encode()
    headers = {"Content-Type": "application/json"}
    latencies: list[float] = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency), timeout=aiohttp.ClientTimeout(total=120)
    ) as http:

        async def caller(end: float) -> None:
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with http.post(url + "/rerank", data=body, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"/rerank answered {r.status}")
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(caller(time.perf_counter() + 0.5) for _ in range(concurrency)))  # warm-up
        latencies.clear()
        t0 = time.perf_counter()
        await asyncio.gather(*(caller(t0 + seconds) for _ in range(concurrency)))
        return latencies, time.perf_counter() - t0


def run(
    latency_ms: float,
    capacity: int,
    concurrency: int,
    rounds: int,
    seconds: float,
    workdir: Path,
    log: Callable[[str], None] = print,
    compare_source: Path | None = None,
) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    ports = free_ports(4)
    fast = [f"127.0.0.1:{p}" for p in ports[:3]]
    slow = f"127.0.0.1:{ports[3]}"
    setups = {
        "1 replica": fast[:1],
        "2 replicas": fast[:2],
        "3 replicas": fast,
        "2 fast + 1 slow": [*fast[:2], slow],
    }
    if compare_source is not None:  # the same single-replica load on another version of the API
        setups["1 replica, compared API"] = fast[:1]
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            start_fakes(ports, [latency_ms] * 3 + [latency_ms * SLOW_FACTOR], capacity, workdir / "fakes.log")
        )
        apis = {}
        for name, urls in setups.items():
            source = compare_source if name.endswith("compared API") else None
            proc, url = start_api(",".join(urls), workdir / f"api-{len(apis)}.log", source)
            procs.append(proc)
            apis[name] = (proc, url)
        samples: dict[str, dict[str, list]] = {n: {"rps": [], "lat": [], "cpu": []} for n in setups}
        names = list(setups)
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                proc, url = apis[name]
                cpu0 = procstats.cpu_s(proc.pid)
                latencies, wall = asyncio.run(closed_loop(url, concurrency, seconds))
                cpu = procstats.cpu_s(proc.pid) - cpu0
                samples[name]["rps"].append(len(latencies) / wall)
                samples[name]["lat"] += latencies
                samples[name]["cpu"].append(cpu / max(1, len(latencies)))
                log(f"round {r + 1} {name}: {len(latencies) / wall:.1f} req/s")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    per_replica = capacity / (latency_ms / 1000)
    out: dict[str, Any] = {
        "machine": machine_info(),
        "load": {
            "latency_ms": latency_ms,
            "capacity": capacity,
            "ideal_rps_per_replica": per_replica,
            "concurrency": concurrency,
            "rounds": rounds,
            "seconds": seconds,
            "documents": len(DOCUMENTS),
            "compared_source": str(compare_source) if compare_source else None,
        },
        "setups": {},
    }
    for name, s in samples.items():
        lat = np.array(s["lat"]) * 1000
        out["setups"][name] = {
            "rps": float(np.median(s["rps"])),
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "api_cpu_ms_per_request": float(np.median(s["cpu"]) * 1000),
        }
    one = out["setups"]["1 replica"]["rps"]
    out["scaling"] = {
        n: out["setups"][f"{n} replica{'s' if n > 1 else ''}"]["rps"] / (n * one) for n in (1, 2, 3)
    }
    out["slow_p99_ratio"] = out["setups"]["2 fast + 1 slow"]["p99_ms"] / out["setups"]["2 replicas"]["p99_ms"]
    return out


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| replicas behind one API | requests/s | x ideal | p50 ms | p99 ms | API CPU ms/request |",
        "|---|---|---|---|---|---|",
    ]
    ideal = result["load"]["ideal_rps_per_replica"]
    for name, s in result["setups"].items():
        n = 3 if "slow" in name else int(name[0])  # "1 replica, compared API" included
        lines.append(
            f"| {name} | {s['rps']:.0f} | {s['rps'] / (n * ideal):.2f} | {s['p50_ms']:.1f} | "
            f"{s['p99_ms']:.1f} | {s['api_cpu_ms_per_request']:.2f} |"
        )
    scaling = ", ".join(f"{n}: {v:.2f}" for n, v in result["scaling"].items())
    lines.append("")
    lines.append(
        f"Scaling (requests/s of n replicas / n x one replica): {scaling}; p99 with the slow replica / "
        f"without it: {result['slow_p99_ratio']:.2f}"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--latency-ms", type=float, default=40.0, help="per request of a fast replica (default %(default)s)"
    )
    p.add_argument(
        "--capacity", type=int, default=2, help="requests a replica serves at once (default %(default)s)"
    )
    p.add_argument("--concurrency", type=int, default=24, help="callers (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default %(default)s)")
    p.add_argument("--seconds", type=float, default=4.0, help="per API per round (default %(default)s)")
    p.add_argument(
        "--compare-source",
        type=Path,
        default=None,
        help="a checkout of another version (its api/ and core/): its API also runs the 1-replica load",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "replicas.json")
    args = p.parse_args(argv)
    result = run(
        args.latency_ms,
        args.capacity,
        args.concurrency,
        args.rounds,
        args.seconds,
        args.out.parent / "replicas-run",
        compare_source=args.compare_source,
    )
    write_result(args.out, result)
    print("\n".join(table(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
