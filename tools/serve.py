"""`make serve [REPLICAS=N]`: N embedded Triton servers on one model repository and, in front of
all of them, the rerank HTTP API. Replica i listens on the given HTTP, gRPC and metrics ports
plus 3*i; with --gpus each replica sees one GPU (CUDA_VISIBLE_DEVICES).

Every child runs in the foreground in its own process group, so Ctrl-C reaches this launcher
alone, which stops them in order: the API first (it stops accepting and finishes its requests in
flight), then the replicas (each drains: not ready, new requests refused, in-flight finished).
SIGTERM and SIGHUP do the same; the death of this launcher's parent too. The API exiting, or the
last replica, stops the rest; a replica that exits while others run is reported and the others go
on serving (the API routes around it). Children whose launcher is SIGKILLed get SIGTERM from the
kernel."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

from reranker_server.embedded import DRAIN_TIMEOUT_S, parent_death_signal, watch_parent
from reranker_server.replicas import ReplicaPorts, gpu_environment, offset_ports

EXIT_MARGIN_S = 30.0  # beyond the drain timeouts: model unloading and process exit


@dataclass
class Child:
    """One process this launcher runs: a Triton replica's launcher or the API."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def replica_ports_of(args: argparse.Namespace) -> list[ReplicaPorts]:
    return offset_ports(ReplicaPorts(args.http_port, args.grpc_port, args.metrics_port), args.replicas)


def children(args: argparse.Namespace) -> list[Child]:
    """The replicas' launchers, then the API (none with --api-port 0)."""
    ports = replica_ports_of(args)
    envs = gpu_environment(args.gpus, args.replicas)
    replicas = [
        Child(
            f"triton-{i}",
            [
                sys.executable,
                "-m",
                "reranker_server.embedded",
                "--model-repository",
                args.model_repository,
                "--http-port",
                str(p.http),
                "--grpc-port",
                str(p.grpc),
                "--metrics-port",
                str(p.metrics),
                "--drain-timeout-s",
                f"{args.drain_timeout_s:g}",
            ],
            envs[i],
        )
        for i, p in enumerate(ports)
    ]
    if not args.api_port:
        return replicas
    api = Child(
        "api",
        [
            sys.executable,
            "-m",
            "reranker_api",
            "--triton-url",
            ",".join(f"127.0.0.1:{p.grpc}" for p in ports),
            "--host",
            args.api_host,
            "--port",
            str(args.api_port),
            "--graceful-timeout-s",
            f"{args.drain_timeout_s:g}",
            *args.api_args,
        ],
    )
    return [*replicas, api]


def commands(args: argparse.Namespace) -> list[list[str]]:
    """The command line of every child, the API last."""
    return [child.argv for child in children(args)]


def parse_gpus(text: str) -> list[str]:
    """`--gpus 0,1,2`: one GPU index or UUID per replica."""
    return [g.strip() for g in text.split(",")]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description="Serve a model repository on N embedded Triton servers "
        "with the rerank HTTP API in front of them"
    )
    p.add_argument("--model-repository", default="model_repository")
    p.add_argument("--http-port", type=int, default=8000, help="replica 0's; replica i: +3*i")
    p.add_argument("--grpc-port", type=int, default=8001, help="replica 0's; replica i: +3*i")
    p.add_argument("--metrics-port", type=int, default=8002, help="replica 0's; replica i: +3*i")
    p.add_argument("--replicas", type=int, default=1, help="Triton servers to run (default %(default)s)")
    p.add_argument(
        "--gpus",
        type=parse_gpus,
        default=None,
        help="one GPU per replica, comma-separated (0,1,2): replica i sees only the i-th",
    )
    p.add_argument(
        "--drain-timeout-s",
        type=float,
        default=DRAIN_TIMEOUT_S,
        help="on stop, the API and then each replica give requests in flight this long to finish "
        "(default %(default)s)",
    )
    p.add_argument("--api-port", type=int, default=8080, help="rerank API port; 0: no API")
    p.add_argument("--api-host", default="127.0.0.1")
    p.add_argument("api_args", nargs="*", help="more reranker_api flags, after --")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Arguments checked as a whole: replica count, ports, GPUs, drain timeout."""
    p = parser()
    args = p.parse_args(argv)
    if args.drain_timeout_s <= 0:
        p.error(f"--drain-timeout-s must be positive, got {args.drain_timeout_s:g}")
    try:
        children(args)
    except ValueError as exc:
        p.error(str(exc))
    if args.api_port and args.api_port in {x for r in replica_ports_of(args) for x in vars(r).values()}:
        p.error(f"--api-port {args.api_port} is also a Triton replica's port")
    return args


def _stop(procs: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM to each still running process (together), then wait for them (SIGKILL after
    `timeout`)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    kids = children(args)
    stop_requested: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.append(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, request_stop)
    procs = [
        subprocess.Popen(
            kid.argv,
            env={**os.environ, **kid.env},
            process_group=0,
            preexec_fn=parent_death_signal(),
        )
        for kid in kids
    ]
    watch_parent()  # parent gone: SIGTERM to this process
    api = [p for kid, p in zip(kids, procs, strict=True) if kid.name == "api"]
    triton = [p for kid, p in zip(kids, procs, strict=True) if kid.name != "api"]
    reported: set[int] = set()

    def report_exits() -> None:
        for i, proc in enumerate(triton):
            if proc.poll() is not None and i not in reported:  # the others go on serving
                reported.add(i)
                left = sum(p.poll() is None for p in triton)
                print(f"triton-{i} exited with code {proc.returncode}; {left} replica(s) left", flush=True)

    while not stop_requested and all(p.poll() is None for p in api) and any(p.poll() is None for p in triton):
        report_exits()
        time.sleep(0.2)
    report_exits()  # one that exited just before the stop request is still reported
    if stop_requested:
        print(f"{signal.Signals(stop_requested[0]).name}: stopping the API, then draining Triton", flush=True)
    _stop(api, args.drain_timeout_s + EXIT_MARGIN_S)
    _stop(triton, args.drain_timeout_s + EXIT_MARGIN_S)
    codes = [p.returncode for p in procs]
    return max((c for c in codes if c and c > 0), default=0)


if __name__ == "__main__":
    sys.exit(main())
