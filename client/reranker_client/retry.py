"""Bounded retries of idempotent scoring requests.

Scoring a pair has no side effect, so a request that failed because the server (or the model's
backend process) was unreachable can be sent again. Retries are bounded three ways: a number of
attempts, an exponential backoff capped at `backoff_max_s`, and an overall deadline for the whole
call. Only unavailability and a model being reloaded are retried (see is_retryable); invalid input,
unknown models, server-side rejections and timeouts are raised at once. When the budget runs out
the caller gets ONE ServerUnavailableError that says how many attempts were made and why the last
one failed. The sync and asyncio clients share this policy and its book-keeping (_Attempts).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from reranker_client.errors import (
    InvalidInputError,
    ModelReloadingError,
    RerankerError,
    ServerUnavailableError,
)

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """True for errors a later attempt may not see: server down or restarting, the model's backend
    process crashed (ServerUnavailableError), or the model is known but has no loaded version right
    now (ModelReloadingError). An unknown model, bad input, server-side rejections and timeouts are final."""
    return isinstance(exc, (ServerUnavailableError, ModelReloadingError))


@dataclass(frozen=True)
class RetryPolicy:
    """attempts >= 1 (1 = no retry); delays base * 2**k (+-jitter) capped at backoff_max_s;
    deadline_s bounds the whole call including the attempts themselves (None = no deadline)."""

    attempts: int = 3
    backoff_base_s: float = 0.2
    backoff_max_s: float = 2.0
    deadline_s: float | None = None
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or self.attempts < 1:
            raise InvalidInputError(f"RetryPolicy.attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("backoff_base_s", "backoff_max_s"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"RetryPolicy.{name} must be >= 0")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise InvalidInputError("RetryPolicy.deadline_s must be > 0 or None")
        if not 0 <= self.jitter <= 1:
            raise InvalidInputError("RetryPolicy.jitter must be in [0, 1]")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A single attempt, no deadline beyond the transport's timeout."""
        return cls(attempts=1, deadline_s=None)

    def delay(self, retry: int) -> float:
        """Sleep before retry number `retry` (1-based)."""
        base = min(self.backoff_max_s, self.backoff_base_s * (2 ** (retry - 1)))
        return base * (1 + self.jitter * (2 * random.random() - 1)) if base else 0.0

    def call(
        self,
        fn: Callable[[float | None], T],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """Run fn(remaining_seconds_or_None) until it succeeds, fails with a non-retryable error, or
        the attempts / deadline are used up (then one ServerUnavailableError)."""
        run = _Attempts(self, clock)
        while (remaining := run.next()) is not False:
            try:
                return fn(remaining)
            except RerankerError as exc:
                pause = run.failed(exc)
            if pause is not None:
                sleep(pause)
        raise run.final_error()

    async def acall(
        self,
        fn: Callable[[float | None], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> T:
        """`call` for coroutines, under the same attempts, backoff and deadline."""
        run = _Attempts(self, clock)
        while (remaining := run.next()) is not False:
            try:
                return await fn(remaining)
            except RerankerError as exc:
                pause = run.failed(exc)
            if pause is not None:
                await sleep(pause)
        raise run.final_error()


class _Attempts:
    """Book-keeping of one retried call, shared by RetryPolicy.call and acall."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.policy, self.clock = policy, clock
        self.start = clock()
        self.made = 0
        self.last: BaseException | None = None
        self.stopped = False

    def _left(self) -> float | None:
        return (
            None if self.policy.deadline_s is None else self.policy.deadline_s - (self.clock() - self.start)
        )

    def next(self) -> float | None | bool:
        """Seconds left for the next attempt (None: no deadline), or False when none may be made."""
        left = self._left()
        if self.stopped or self.made >= self.policy.attempts or (left is not None and left <= 0):
            return False
        self.made += 1
        return left

    def failed(self, exc: RerankerError) -> float | None:
        """Record a failure: re-raise a final one, else the pause before the next attempt (None: stop)."""
        if not is_retryable(exc):
            raise exc
        self.last = exc
        if self.made >= self.policy.attempts:
            return None
        pause = self.policy.delay(self.made)
        left = self._left()
        if left is not None and left <= pause:
            self.stopped = True
            return None
        return pause

    def final_error(self) -> BaseException:
        if self.policy.attempts == 1 and self.last is not None:
            return self.last
        error = ServerUnavailableError(
            f"gave up after {self.made} attempt(s) in {self.clock() - self.start:.1f}s "
            f"(retry policy: attempts={self.policy.attempts}, deadline_s={self.policy.deadline_s}): "
            f"{self.last}"
        )
        error.__cause__ = self.last
        return error
