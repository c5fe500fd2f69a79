"""The rerank HTTP API vs calling Triton's text model directly, side by side in one run.

    python -m bench.api_overhead [--shape quick|base] [--passages 100] [--tokens 200]
                                 [--concurrency 1,16] [--rounds 5] [--requests 32]
    make bench-api

One embedded Triton server serves the exported model and its `-text` model; `python -m
reranker_api` runs in front of it. The same 1 query x 100 passages request goes (a) straight to
the text model over asyncio gRPC (tritonclient.grpc.aio, normalize=true) and (b) through the API
(POST /rerank, TEI shape, sigmoid scores) over HTTP keep-alive connections (aiohttp, a lean
asyncio HTTP client: the overhead measured is the service's, not a slow client library's). At each
concurrency, rounds alternate (a) and (b) bursts (the order swapped every round) so that load from
other processes on a shared machine hits both alike; at concurrency 1 a paired run also sends the
two calls back to back many times (median of the differences). Reported: p50/p95 latency of each path, the
p50 overhead in ms, throughput (requests/s, median over rounds) and its ratio, the CPU the API
process spends per request, the time the service adds around its Triton call (from its own
/metrics: request duration minus backend duration, mean per request) and the largest score
difference between the paths. Also a section of `make bench` (bench/run.py).
Results: bench/results/api-overhead[-<shape>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import tritonclient.grpc.aio as grpcaio

from bench import procstats
from bench.common import LOGS, RESULTS, SHAPES, embedded_server, machine_info, served_repository
from bench.models import build_encoder_checkpoint, export_encoder_onnx
from bench.result_file import write_result
from bench.workloads import rerank_1x100
from reranker_core import tensors
from reranker_server.embedded import free_ports

MODEL = "enc-fp32"
# The measured request and schedule (also what `make bench` runs): 1 query x 100 passages of ~200 tokens.
PASSAGES, TOKENS, LEVELS, ROUNDS, REQUESTS = 100, 200, (1, 16), 5, 32


def start_api(triton_grpc: str, port: int, log: Path) -> subprocess.Popen:
    """`python -m reranker_api` in front of the server; returns once it answers."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reranker_api",
            "--triton-url",
            triton_grpc,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model",
            MODEL,
            "--no-access-log",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def service_time(api_url: str) -> np.ndarray:
    """[request seconds, backend seconds, requests] of POST /rerank so far, from the API's /metrics."""
    text = urllib.request.urlopen(f"{api_url}/metrics", timeout=10).read().decode()
    found = np.zeros(3)
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == 'reranker_api_request_duration_seconds_sum{route="/rerank"}':
            found[0] = float(value)
        elif name.startswith("reranker_api_backend_duration_seconds_sum{"):
            found[1] += float(value)
        elif name == 'reranker_api_request_duration_seconds_count{route="/rerank"}':
            found[2] = float(value)
    return found


async def burst(
    call: Callable[[], Awaitable[Any]], concurrency: int, requests: int
) -> tuple[list[float], float]:
    """`requests` calls spread over `concurrency` workers; per-call latencies and the wall time."""
    latencies: list[float] = []
    left = [requests]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - t0


async def measure(
    grpc_url: str,
    api_url: str,
    query: str,
    passages: list[str],
    levels: Sequence[int],
    rounds: int,
    requests: int,
    log: Callable[[str], None],
    api_pid: int | None = None,
    triton_pid: int | None = None,
) -> dict:
    direct_client = grpcaio.InferenceServerClient(grpc_url)
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(levels)), timeout=aiohttp.ClientTimeout(total=600)
    )
    encoded = np.array([p.encode() for p in passages], dtype=np.object_)
    body = json.dumps({"query": query, "texts": passages}).encode()
    headers = {"Content-Type": "application/json"}

    async def direct() -> np.ndarray:
        q = grpcaio.InferInput(tensors.QUERY, [1], "BYTES")
        q.set_data_from_numpy(np.array([query.encode()], dtype=np.object_))
        p = grpcaio.InferInput(tensors.PASSAGES, [len(passages)], "BYTES")
        p.set_data_from_numpy(encoded)
        result = await direct_client.infer(
            tensors.text_model_name(MODEL),
            [q, p],
            outputs=[grpcaio.InferRequestedOutput(tensors.SCORES)],
            parameters={"normalize": True},
        )
        return result.as_numpy(tensors.SCORES)[-1]

    async def service() -> list:
        async with http.post(f"{api_url}/rerank", data=body, headers=headers) as r:
            r.raise_for_status()
            return await r.json()

    try:
        want = await direct()
        got = {x["index"]: x["score"] for x in await service()}
        max_diff = float(max(abs(got[i] - float(want[i])) for i in range(len(passages))))
        out: dict[str, Any] = {"max_abs_score_diff": max_diff, "levels": {}}
        for c in levels:
            await burst(direct, c, c)  # warm-up at this concurrency
            await burst(service, c, c)
            lat: dict[str, list[float]] = {"direct": [], "api": []}
            thr: dict[str, list[float]] = {"direct": [], "api": []}
            api_cpu_s = triton_cpu_s = 0.0
            inside0 = service_time(api_url)
            n = max(requests, 2 * c)
            for k in range(rounds):
                order = (
                    (("direct", direct), ("api", service))
                    if k % 2 == 0
                    else (("api", service), ("direct", direct))
                )
                for name, fn in order:
                    cpu0 = procstats.cpu_s(api_pid) if api_pid else 0.0
                    server0 = procstats.cpu_s(triton_pid) if triton_pid else 0.0
                    latencies, wall = await burst(fn, c, n)
                    if name == "api" and api_pid:
                        api_cpu_s += procstats.cpu_s(api_pid) - cpu0
                    if name == "direct" and triton_pid:
                        triton_cpu_s += procstats.cpu_s(triton_pid) - server0
                    lat[name] += latencies
                    thr[name].append(n / wall)
                log(
                    f"  c={c} round {k + 1}/{rounds}: direct {np.median(lat['direct']) * 1e3:.1f} ms, "
                    f"api {np.median(lat['api']) * 1e3:.1f} ms"
                )
            level = {
                name: {
                    "p50_ms": float(np.percentile(lat[name], 50) * 1e3),
                    "p95_ms": float(np.percentile(lat[name], 95) * 1e3),
                    "throughput_rps": float(np.median(thr[name])),
                    "requests": len(lat[name]),
                }
                for name in lat
            }
            level["p50_overhead_ms"] = level["api"]["p50_ms"] - level["direct"]["p50_ms"]
            level["throughput_ratio"] = level["api"]["throughput_rps"] / level["direct"]["throughput_rps"]
            if c == 1:
                # Paired: direct and API calls back to back, the order alternating; the median of the
                # per-pair differences is far less sensitive to other load than two separate p50s.
                diffs = []
                for k in range(rounds * n):
                    first, second = (direct, service) if k % 2 == 0 else (service, direct)
                    t0 = time.perf_counter()
                    await first()
                    t1 = time.perf_counter()
                    await second()
                    t2 = time.perf_counter()
                    d_direct, d_api = (t1 - t0, t2 - t1) if k % 2 == 0 else (t2 - t1, t1 - t0)
                    diffs.append(d_api - d_direct)
                level["paired_overhead_ms"] = {
                    "median": float(np.median(diffs) * 1e3),
                    "p25": float(np.percentile(diffs, 25) * 1e3),
                    "p75": float(np.percentile(diffs, 75) * 1e3),
                    "pairs": len(diffs),
                }
                paired = level["paired_overhead_ms"]
                log(
                    f"  c=1 paired: median API - direct {paired['median']:.2f} ms "
                    f"(IQR {paired['p25']:.2f} .. {paired['p75']:.2f})"
                )
            inside = service_time(api_url) - inside0
            level["service_added_ms_per_request"] = (
                float(inside[0] - inside[1]) * 1e3 / max(1.0, float(inside[2]))
            )
            # CPU the API process spends per request: robust to other load on a shared machine.
            level["api_cpu_ms_per_request"] = api_cpu_s * 1e3 / len(lat["api"]) if api_pid else None
            # CPU of the Triton process tree (text model + token model) per direct request.
            level["triton_cpu_ms_per_request"] = (
                triton_cpu_s * 1e3 / len(lat["direct"]) if triton_pid else None
            )
            out["levels"][str(c)] = level
        return out
    finally:
        await http.close()
        await direct_client.close()


def run(
    log: Callable[[str], None],
    shape_name: str = "quick",
    passages_n: int = PASSAGES,
    tokens: int = TOKENS,
    levels: Sequence[int] = LEVELS,
    rounds: int = ROUNDS,
    requests: int = REQUESTS,
) -> dict[str, Any]:
    """Serve the quick/base encoder and its text model, put the API in front, measure both paths."""
    shape = SHAPES[shape_name]
    ckpt = build_encoder_checkpoint(shape)
    fp32 = export_encoder_onnx(ckpt)
    repo = served_repository(ckpt, fp32, ["fp32"], shape)
    work = rerank_1x100(ckpt, passages_n, tokens)
    query, passages = work.pairs[0][0], [p for _, p in work.pairs]
    RESULTS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    server = embedded_server(repo, [MODEL, tensors.text_model_name(MODEL)], LOGS / "api-overhead-triton.log")
    server.start(timeout=600)
    api = None
    try:
        api_port = free_ports(1)[0]
        api = start_api(server.grpc_url, api_port, LOGS / "api-overhead-api.log")
        log(f"{work.name}, shape {shape.name}: direct text model vs rerank API, concurrency {levels}")
        result = asyncio.run(
            measure(
                server.grpc_url,
                f"http://127.0.0.1:{api_port}",
                query,
                passages,
                levels,
                rounds,
                requests,
                log,
                api.pid,
                server.server_pid,
            )
        )
    finally:
        if api is not None:
            api.terminate()
            api.wait(timeout=30)
        server.stop()
    result.update(
        {
            "machine": machine_info(),
            "shape": shape.name,
            "workload": work.name,
            "tokens": work.total_tokens,
            "load_avg_end": os.getloadavg()[0],
        }
    )
    return result


def table(result: dict[str, Any]) -> list[str]:
    """The result as printable lines."""
    lines = [
        f"{'c':>3} {'direct p50 ms':>14} {'api p50 ms':>11} {'overhead ms':>12} {'direct rps':>11} "
        f"{'api rps':>8} {'ratio':>6} {'api cpu ms/req':>15} {'service adds ms':>16} "
        f"{'triton cpu ms/req':>18}"
    ]
    for c, level in result["levels"].items():
        lines.append(
            f"{c:>3} {level['direct']['p50_ms']:14.1f} {level['api']['p50_ms']:11.1f} "
            f"{level['p50_overhead_ms']:12.2f} {level['direct']['throughput_rps']:11.2f} "
            f"{level['api']['throughput_rps']:8.2f} {level['throughput_ratio']:6.3f} "
            f"{level['api_cpu_ms_per_request']:15.2f} {level['service_added_ms_per_request']:16.2f} "
            f"{level['triton_cpu_ms_per_request']:18.2f}"
        )
    paired = result["levels"].get("1", {}).get("paired_overhead_ms")
    if paired:
        lines.append(
            f"c=1 paired overhead (API - direct, back to back): median {paired['median']:.2f} ms, "
            f"IQR {paired['p25']:.2f} .. {paired['p75']:.2f} ms over {paired['pairs']} pairs"
        )
    lines.append(f"max |score difference| {result['max_abs_score_diff']:.2e}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="quick",
        help="model shape: quick (tiny encoder: the API's own cost dominates) or base "
        "(bge-reranker-base: the model's cost dominates; slow on CPU)",
    )
    parser.add_argument("--passages", type=int, default=PASSAGES)
    parser.add_argument("--tokens", type=int, default=TOKENS)
    parser.add_argument("--concurrency", default=",".join(map(str, LEVELS)))
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--requests", type=int, default=REQUESTS, help="requests per burst (at least 2 x concurrency)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.concurrency.split(",")]
    result = run(
        lambda s: print(s, flush=True),
        args.shape,
        args.passages,
        args.tokens,
        levels,
        args.rounds,
        args.requests,
    )
    result["command"] = "python -m bench.api_overhead " + " ".join(argv if argv is not None else sys.argv[1:])
    out = Path(args.out) if args.out else RESULTS / f"api-overhead-{args.shape}.json"
    write_result(out, result)
    for line in table(result):
        print(line)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
