"""python -m reranker_api --triton-url HOST:8001 --host 0.0.0.0 --port 8080 [--default-model NAME] ...

SIGTERM or SIGINT: the listening socket closes at once (new connections are refused, so load
balancers and probes see the API gone), the requests in flight finish (at most
--graceful-timeout-s), then the process exits."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from reranker_api.app import create_app
from reranker_api.settings import parse_settings


def main(argv: Sequence[str] | None = None) -> int:
    settings = parse_settings(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    import uvicorn

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level="info",
        proxy_headers=False,
        server_header=False,
        h11_max_incomplete_event_size=64 * 1024,
        timeout_graceful_shutdown=settings.graceful_timeout_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
