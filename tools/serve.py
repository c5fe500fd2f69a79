"""`make serve`: the embedded Triton server and, next to it, the rerank HTTP API in front of its
gRPC port. Both run in the foreground as child processes; Ctrl-C, SIGTERM, SIGHUP or the death of
this launcher's parent stops both, and either one exiting stops the other."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from reranker_server.embedded import watch_parent


def commands(args: argparse.Namespace) -> list[list[str]]:
    triton = [
        sys.executable,
        "-m",
        "reranker_server.embedded",
        "--model-repository",
        args.model_repository,
        "--http-port",
        str(args.http_port),
        "--grpc-port",
        str(args.grpc_port),
        "--metrics-port",
        str(args.metrics_port),
    ]
    if not args.api_port:
        return [triton]
    api = [
        sys.executable,
        "-m",
        "reranker_api",
        "--triton-url",
        f"127.0.0.1:{args.grpc_port}",
        "--host",
        args.api_host,
        "--port",
        str(args.api_port),
        *args.api_args,
    ]
    return [triton, api]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve a model repository on the embedded Triton server "
        "with the rerank HTTP API in front of it"
    )
    parser.add_argument("--model-repository", default="model_repository")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--metrics-port", type=int, default=8002)
    parser.add_argument("--api-port", type=int, default=8080, help="rerank API port; 0: no API")
    parser.add_argument("--api-host", default="127.0.0.1")
    parser.add_argument("api_args", nargs="*", help="more reranker_api flags, after --")
    args = parser.parse_args(argv)
    procs = [subprocess.Popen(cmd) for cmd in commands(args)]

    def stop(*_: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    watch_parent()  # parent gone: SIGTERM to this process, handled by stop()
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    stop()
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=60))
        except subprocess.TimeoutExpired:
            proc.kill()
            codes.append(proc.wait())
    return max((c for c in codes if c and c > 0), default=0)


if __name__ == "__main__":
    sys.exit(main())
