"""`make perf`: concurrency sweep against any served model with tritonclient's asyncio gRPC API.

    python -m bench.perf_sweep --model NAME [--url localhost:8001 | --repository DIR]
                               [--levels 1,2,4,8,16,32] [--requests-per-level N | --seconds S]
                               [--input-data bench/perf_analyzer_input.json] [--batch 8]
    python -m bench.perf_sweep --write-input-data     # regenerate the committed input file

Each request carries `--batch` rows taken from the perf_analyzer input-data file (the same file
NGC's perf_analyzer reads, see docs/benchmarks.md), so both tools send identical tensors. For each
level, `level` coroutines keep one request in flight each; reported: requests/s, rows/s,
p50/p95/p99 latency. Without --url an embedded Triton server is started on --repository with
only --model loaded. Results: bench/results/perf_sweep-<model>.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcclient

from bench.common import QUICK, REPO, RESULTS, embedded_server
from bench.models import build_encoder_checkpoint
from bench.result_file import write_result
from bench.workloads import encode_encoder_pairs, rerank_1x100

DEFAULT_INPUT = REPO / "bench" / "perf_analyzer_input.json"
LEVELS = (1, 2, 4, 8, 16, 32)
TRITON_TO_NUMPY = {
    "INT64": np.int64,
    "INT32": np.int32,
    "FP32": np.float32,
    "FP16": np.float16,
    "BYTES": np.object_,
    "BOOL": np.bool_,
}


def load_rows(path: Path) -> list[dict[str, np.ndarray]]:
    """The perf_analyzer JSON's entries as {input name: 1-D array} (one row each)."""
    data = json.loads(Path(path).read_text())
    rows = []
    for entry in data["data"]:
        row = {}
        for name, spec in entry.items():
            values = spec["content"] if isinstance(spec, dict) else spec
            shape = spec.get("shape", [len(values)]) if isinstance(spec, dict) else [len(values)]
            row[name] = np.asarray(values).reshape(shape)
        rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no entries under 'data'")
    return rows


def make_batch(
    rows: list[dict[str, np.ndarray]], batch: int, start: int, dtypes: dict[str, str]
) -> dict[str, np.ndarray]:
    """`batch` consecutive rows (cycling), stacked per input with the model's datatypes."""
    picked = [rows[(start + i) % len(rows)] for i in range(batch)]
    out = {}
    for name in picked[0]:
        arr = np.stack([r[name] for r in picked])
        out[name] = arr.astype(TRITON_TO_NUMPY.get(dtypes.get(name, "INT64"), arr.dtype))
    return out


async def sweep(
    url: str,
    model: str,
    rows: list[dict[str, np.ndarray]],
    batch: int,
    levels: list[int],
    requests_per_level: int | None,
    seconds: float | None,
    log=print,
) -> dict[str, Any]:
    client = grpcclient.InferenceServerClient(url=url)
    try:
        meta = await client.get_model_metadata(model, as_json=True)
        dtypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
        outputs = [grpcclient.InferRequestedOutput(o["name"]) for o in meta["outputs"]]

        def inputs(k: int) -> list:
            tensors = []
            for name, arr in make_batch(rows, batch, k * batch, dtypes).items():
                t = grpcclient.InferInput(name, list(arr.shape), dtypes.get(name, "INT64"))
                t.set_data_from_numpy(arr)
                tensors.append(t)
            return tensors

        prepared = [inputs(k) for k in range(max(1, len(rows)))]
        await client.infer(model, prepared[0], outputs=outputs)  # warm-up
        results = []
        for level in levels:
            lat: list[float] = []
            counter = {"sent": 0}
            total = requests_per_level if requests_per_level else None
            deadline = time.perf_counter() + seconds if seconds else None

            async def worker() -> None:
                while True:
                    if total is not None and counter["sent"] >= total:
                        return
                    if deadline is not None and time.perf_counter() >= deadline:
                        return
                    k = counter["sent"]
                    counter["sent"] += 1
                    t0 = time.perf_counter()
                    await client.infer(model, prepared[k % len(prepared)], outputs=outputs)
                    lat.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(level)))
            elapsed = time.perf_counter() - t0
            row = {
                "concurrency": level,
                "requests": len(lat),
                "elapsed_s": elapsed,
                "requests_per_s": len(lat) / elapsed,
                "rows_per_s": len(lat) * batch / elapsed,
                "p50_s": float(np.percentile(lat, 50)),
                "p95_s": float(np.percentile(lat, 95)),
                "p99_s": float(np.percentile(lat, 99)),
            }
            results.append(row)
            log(
                f"concurrency {level:>2}: {row['rows_per_s']:.1f} rows/s, p50 {row['p50_s'] * 1e3:.1f} ms, "
                f"p95 {row['p95_s'] * 1e3:.1f} ms, p99 {row['p99_s'] * 1e3:.1f} ms ({len(lat)} requests)"
            )
        return {"model": model, "url": url, "batch": batch, "levels": results}
    finally:
        await client.close()


def write_input_data(
    path: Path = DEFAULT_INPUT, rows: int = 16, width: int = 256, checkpoint: Path | None = None
) -> Path:
    """(Re)generate the committed perf_analyzer input: `rows` encoded (query, passage) pairs of
    ~200 tokens (`<s> q </s></s> p </s>`), right-padded to `width` (perf_analyzer needs one shape)."""
    ckpt = checkpoint or build_encoder_checkpoint(QUICK)
    work = rerank_1x100(ckpt, passages=rows, tokens=200, seed=11)
    data = []
    for seq in encode_encoder_pairs(ckpt, work.pairs, max_length=width):
        pad = width - len(seq)
        data.append(
            {
                "input_ids": {"content": seq + [1] * pad, "shape": [width]},
                "attention_mask": {"content": [1] * len(seq) + [0] * pad, "shape": [width]},
            }
        )
    path.write_text(json.dumps({"data": data}, separators=(",", ":")) + "\n")
    return path


def chart(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [r["concurrency"] for r in result["levels"]]
    fig, ax1 = plt.subplots(figsize=(7, 4.2))
    ax1.plot(levels, [r["rows_per_s"] for r in result["levels"]], "-o", color="tab:blue")
    ax1.set_xscale("log", base=2)
    ax1.set_xlabel("requests in flight")
    ax1.set_ylabel(f"pairs / s (batch {result['batch']} per request)", color="tab:blue")
    ax2 = ax1.twinx()
    for q, style in (("p50_s", "-s"), ("p95_s", "--^"), ("p99_s", ":x")):
        ax2.plot(levels, [r[q] * 1e3 for r in result["levels"]], style, color="tab:red", label=q[:3])
    ax2.set_ylabel("latency (ms)", color="tab:red")
    ax2.legend(loc="upper left", fontsize=8)
    ax1.set_title(f"{result['model']}: concurrency sweep ({result.get('date', '')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="served model name (required unless --write-input-data)")
    parser.add_argument("--url", help="gRPC host:port of a running server")
    parser.add_argument("--repository", help="start an embedded server on this repository instead")
    parser.add_argument("--levels", default=",".join(map(str, LEVELS)))
    parser.add_argument(
        "--requests-per-level",
        type=int,
        default=None,
        help="requests per level (default: 2 x level, at least 8)",
    )
    parser.add_argument("--seconds", type=float, default=None, help="or: run each level this long")
    parser.add_argument("--input-data", default=str(DEFAULT_INPUT))
    parser.add_argument("--batch", type=int, default=8, help="rows (pairs) per request")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--write-input-data",
        action="store_true",
        help="regenerate --input-data from the quick benchmark checkpoint, then exit",
    )
    args = parser.parse_args(argv)
    if args.write_input_data:
        print(f"wrote {write_input_data(Path(args.input_data))}")
        return 0
    if not args.model:
        parser.error("--model is required")
    if bool(args.url) == bool(args.repository):
        parser.error("give exactly one of --url or --repository")
    levels = [int(x) for x in args.levels.split(",") if x]
    rows = load_rows(Path(args.input_data))
    server = None
    url = args.url
    if args.repository:
        server = embedded_server(args.repository, [args.model])
        server.start(timeout=600)
        url = server.grpc_url
    try:

        async def run_all() -> dict:
            out = {}
            for level in levels:  # requests per level default scales with the level
                n = args.requests_per_level or (None if args.seconds else max(8, 2 * level))
                part = await sweep(url, args.model, rows, args.batch, [level], n, args.seconds)
                out.setdefault("levels", []).extend(part["levels"])
                out.update({k: v for k, v in part.items() if k != "levels"})
            return out

        result = asyncio.run(run_all())
    finally:
        if server is not None:
            server.stop()
    result["date"] = time.strftime("%Y-%m-%d %H:%M %Z")
    result["cpus"] = os.cpu_count()
    out = Path(args.out) if args.out else RESULTS / f"perf_sweep-{args.model}.json"
    write_result(out, result)
    chart(result, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
