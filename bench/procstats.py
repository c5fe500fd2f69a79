"""Peak memory of a process tree (tritonserver + its backend stubs) while a benchmark runs."""

from __future__ import annotations

import threading

from reranker_server.process_tree import tree_cpu_s as cpu_s  # noqa: F401  (used by the benchmarks)
from reranker_server.process_tree import tree_rss_mib


class PeakRss:
    """Samples the tree's RSS every `interval` seconds in a thread; `.peak_mb` after stop()."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval = pid, interval
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> float:
        value = tree_rss_mib(self.pid)
        self.peak_mb = max(self.peak_mb, value)
        return value

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakRss:
        self.sample()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()
