"""Service settings: command-line flags, with environment variables for the secrets."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reranker_core.endpoints import parse_endpoints
from reranker_core.errors import InputError
from reranker_core.limits import MAX_TEXT_BYTES, TEXT_MODEL_MAX_PAIRS
from reranker_core.options import LONG_PASSAGE_POLICIES, TRUNCATE

KEYS_FILE_ENV = "RERANKER_API_KEYS_FILE"
KEYS_ENV = "RERANKER_API_KEYS"
PROBE_TIMEOUT_S = 5.0  # health and metadata probes of Triton (model list, config, readiness)


@dataclass
class Settings:
    triton_url: str = "localhost:8001"  # host:port, "a:8001,b:8001" or "dns:///name:8001"
    dns_refresh_s: float = 10.0  # how often a dns:/// name is resolved again
    host: str = "127.0.0.1"
    port: int = 8080
    default_model: str | None = None
    models: tuple[str, ...] = ()  # served models to use; empty = discover every `<name>-text`
    text_suffix: str = "-text"
    api_keys: tuple[str, ...] = ()
    max_body_bytes: int = 8 * 1024 * 1024
    max_documents: int = TEXT_MODEL_MAX_PAIRS  # the text model's own limit (config max_pairs)
    max_text_bytes: int = MAX_TEXT_BYTES
    max_concurrent_requests: int = 512
    request_timeout_s: float = 60.0
    retry_after_s: int = 1
    long_passages: str = TRUNCATE  # default policy for passages longer than max_length
    cors_origins: tuple[str, ...] = ()
    access_log: bool = True
    root_path: str = ""
    graceful_timeout_s: float = 30.0  # on SIGTERM, requests in flight get this long to finish


def read_api_keys(path: str | None, env: dict[str, str] | None = None) -> tuple[str, ...]:
    """Keys from a file (one per line; blank lines and '#' comments skipped) and/or the
    comma-separated RERANKER_API_KEYS variable. A named file that cannot be read is an error."""
    env = os.environ if env is None else env
    keys: list[str] = []
    path = path or env.get(KEYS_FILE_ENV) or None
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SystemExit(f"cannot read the API keys file {path}: {exc.strerror or exc}") from None
        keys += [
            line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")
        ]
        if not keys:
            raise SystemExit(f"the API keys file {path} holds no key")
    keys += [k.strip() for k in env.get(KEYS_ENV, "").split(",") if k.strip()]
    return tuple(dict.fromkeys(keys))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reranker_api",
        description="Rerank HTTP API (TEI, Cohere v1/v2, NVIDIA NIM) in front of the reranker text "
        "models served by Triton.",
    )
    d = Settings()
    p.add_argument(
        "--triton-url",
        default=d.triton_url,
        help="Triton gRPC address host:port, or several replicas: a comma-separated list "
        "(a:8001,b:8001) or a DNS name whose addresses are the replicas "
        "(dns:///triton-headless.ns.svc:8001) (default %(default)s)",
    )
    p.add_argument(
        "--dns-refresh",
        type=float,
        default=d.dns_refresh_s,
        help="seconds between resolutions of a dns:/// Triton address (default %(default)s)",
    )
    p.add_argument("--host", default=d.host, help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=d.port, help="port to listen on (default %(default)s)")
    p.add_argument(
        "--default-model",
        default=None,
        help="model used when a request names none (default: the only served model)",
    )
    p.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        help="serve only this model (repeatable; default: every '<name>-text' model on Triton)",
    )
    p.add_argument(
        "--api-keys-file",
        default=None,
        help=f"file with one API key per line (or env {KEYS_FILE_ENV}; env {KEYS_ENV} adds "
        "comma-separated keys); with keys, POST routes need 'Authorization: Bearer <key>'",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=d.max_body_bytes,
        help="request body limit (default %(default)s)",
    )
    p.add_argument(
        "--max-documents",
        type=int,
        default=d.max_documents,
        help="documents per request (default %(default)s)",
    )
    p.add_argument(
        "--max-text-bytes",
        type=int,
        default=d.max_text_bytes,
        help="UTF-8 bytes per query or document (default %(default)s)",
    )
    p.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=d.max_concurrent_requests,
        help="requests scored at once; more get 429 (default %(default)s)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=d.request_timeout_s,
        help="seconds a request may wait for Triton before 504 (default %(default)s)",
    )
    p.add_argument(
        "--retry-after",
        type=int,
        default=d.retry_after_s,
        help="Retry-After seconds sent with 503 (default %(default)s)",
    )
    p.add_argument(
        "--long-passages",
        choices=LONG_PASSAGE_POLICIES,
        default=d.long_passages,
        help="default policy for passages longer than the model's max_length (default %(default)s)",
    )
    p.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        default=[],
        help="allow browser calls from this origin (repeatable; CORS is off without it)",
    )
    p.add_argument(
        "--text-suffix",
        default=d.text_suffix,
        help="suffix of the text models on Triton (default %(default)s)",
    )
    p.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="turn off the JSON access log"
    )
    p.add_argument("--root-path", default="", help="path prefix when served behind a proxy")
    p.add_argument(
        "--graceful-timeout-s",
        type=float,
        default=d.graceful_timeout_s,
        help="on SIGTERM/SIGINT the API stops accepting connections at once and gives the requests "
        "in flight this many seconds to finish before it exits (default %(default)s)",
    )
    return p


def parse_settings(argv: Sequence[str] | None = None, env: dict[str, str] | None = None) -> Settings:
    args = parser().parse_args(argv)
    for name in ("max_body_bytes", "max_documents", "max_text_bytes", "max_concurrent_requests"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1")
    if args.request_timeout <= 0:
        raise SystemExit("--request-timeout must be positive")
    if not 0 < args.dns_refresh <= 3600:
        raise SystemExit("--dns-refresh must be between 0 and 3600 seconds")
    try:
        parse_endpoints(args.triton_url)
    except InputError as exc:
        raise SystemExit(f"--triton-url: {exc}") from None
    if args.graceful_timeout_s <= 0:
        raise SystemExit("--graceful-timeout-s must be positive")
    return Settings(
        triton_url=args.triton_url,
        dns_refresh_s=args.dns_refresh,
        host=args.host,
        port=args.port,
        default_model=args.default_model or None,
        models=tuple(args.models),
        text_suffix=args.text_suffix,
        api_keys=read_api_keys(args.api_keys_file, env),
        max_body_bytes=args.max_body_bytes,
        max_documents=args.max_documents,
        max_text_bytes=args.max_text_bytes,
        max_concurrent_requests=args.max_concurrent_requests,
        request_timeout_s=args.request_timeout,
        retry_after_s=max(0, args.retry_after),
        long_passages=args.long_passages,
        cors_origins=tuple(args.cors_origins),
        access_log=args.access_log,
        root_path=args.root_path,
        graceful_timeout_s=args.graceful_timeout_s,
    )
