"""The score cache: one JSON line per (configuration, query), appended and flushed as soon as the
query is scored, so that an interrupted run loses at most the query in flight and a re-run scores
only what is missing (a new configuration, or queries whose candidates changed)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from reranker_eval.errors import DataError


@dataclass(frozen=True)
class Scored:
    """The scores of one query under one configuration, with the time its requests took."""

    config: str  # Configuration.key
    qid: str
    fingerprint: str  # Query.fingerprint: what was scored
    scores: list[float]  # in the query's candidate order
    latency_s: list[float]  # one per request


class ScoreCache:
    """Reads the cache file once, then appends to it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[tuple[str, str], Scored] = {}
        self.dropped_partial_line = False
        if path.exists():
            self._load()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            # A line cut short by a kill mid-write: drop it so that appends start on a new line.
            self.dropped_partial_line = True
            with open(self.path, "r+b") as handle:
                handle.truncate(len(complete))
        for number, line in enumerate(complete.decode("utf-8", errors="replace").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = Scored(**json.loads(line))
            except (ValueError, TypeError) as exc:
                raise DataError(
                    self.path, number, f"not a score cache line ({exc}); remove the line or the file"
                ) from None
            self.entries[(entry.config, entry.qid)] = entry

    def get(self, config: str, qid: str, fingerprint: str) -> Scored | None:
        """The cached scores, if they were made for the same candidates."""
        entry = self.entries.get((config, qid))
        return entry if entry is not None and entry.fingerprint == fingerprint else None

    def put(self, entry: Scored) -> None:
        """Record and write through (flushed to the OS at once)."""
        self.entries[(entry.config, entry.qid)] = entry
        self._handle.write(json.dumps(asdict(entry), separators=(",", ":")) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()
