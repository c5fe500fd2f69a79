"""AsyncRerankerClient behind RerankerClient's synchronous surface, so one test (or the load
driver) can run against both clients: the async client lives on its own event loop thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any


class BlockingAsyncClient:
    """`BlockingAsyncClient(url, model, protocol, **kwargs)` connects an AsyncRerankerClient on a
    private loop; compute_score / rerank / close block until the coroutine finishes there."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from reranker_client.aio import AsyncRerankerClient

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="async-client-loop", daemon=True)
        self._thread.start()
        try:
            self._client = self._run(AsyncRerankerClient.connect(*args, **kwargs))
        except BaseException:
            self._stop()
            raise

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    @property
    def manifest(self):
        return self._client.manifest

    @property
    def tokenize(self) -> str:
        return self._client.tokenize

    def compute_score(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._client.compute_score(*args, **kwargs))

    def rerank(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(self._client.rerank(*args, **kwargs))

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self._client.close())
        finally:
            self._stop()

    def __enter__(self) -> BlockingAsyncClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_client(mode: str, *args: Any, **kwargs: Any) -> Any:
    """A RerankerClient (mode "sync") or a BlockingAsyncClient (mode "async")."""
    if mode == "sync":
        from reranker_client import RerankerClient

        return RerankerClient(*args, **kwargs)
    return BlockingAsyncClient(*args, **kwargs)
