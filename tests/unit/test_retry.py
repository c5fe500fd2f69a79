"""RetryPolicy: what is retried, how often, how long it waits, and the one error it ends with."""
from __future__ import annotations

import pytest

from reranker_client.errors import InferenceError, InvalidInputError, ModelNotReadyError, ServerUnavailableError
from reranker_client.retry import RetryPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def failing(errors, result="ok", cost=0.0, clock=None):
    calls = []

    def fn(remaining):
        calls.append(remaining)
        if clock is not None:
            clock.now += cost
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return result
    return fn, calls


def test_retries_unavailable_then_succeeds_with_exponential_capped_backoff():
    c = FakeClock()
    policy = RetryPolicy(attempts=5, backoff_base_s=0.5, backoff_max_s=1.5, deadline_s=None, jitter=0)
    fn, calls = failing([ServerUnavailableError("down")] * 4)
    assert policy.call(fn, sleep=c.sleep, clock=c.clock) == "ok"
    assert len(calls) == 5 and c.sleeps == [0.5, 1.0, 1.5, 1.5]


@pytest.mark.parametrize("exc", [InvalidInputError("bad"), InferenceError("invalid argument"),
                                 ModelNotReadyError("unknown model")])
def test_never_retries_non_transient_errors(exc):
    c = FakeClock()
    fn, calls = failing([exc])
    with pytest.raises(type(exc)):
        RetryPolicy(attempts=5).call(fn, sleep=c.sleep, clock=c.clock)
    assert len(calls) == 1 and c.sleeps == []


def test_retries_a_model_that_is_being_reloaded():
    c = FakeClock()
    fn, calls = failing([ModelNotReadyError("Request for unknown model: 'm' has no available versions")])
    assert RetryPolicy(attempts=2).call(fn, sleep=c.sleep, clock=c.clock) == "ok" and len(calls) == 2


def test_gives_up_after_attempts_with_one_clear_error():
    c = FakeClock()
    fn, calls = failing([ServerUnavailableError("conn refused")] * 10)
    with pytest.raises(ServerUnavailableError, match=r"gave up after 3 attempt\(s\).*conn refused"):
        RetryPolicy(attempts=3, jitter=0).call(fn, sleep=c.sleep, clock=c.clock)
    assert len(calls) == 3


def test_deadline_bounds_the_whole_call_and_each_attempt_sees_what_is_left():
    c = FakeClock()
    fn, calls = failing([ServerUnavailableError("down")] * 100, cost=1.0, clock=c)
    policy = RetryPolicy(attempts=100, backoff_base_s=1.0, backoff_max_s=1.0, deadline_s=5.0, jitter=0)
    with pytest.raises(ServerUnavailableError, match="gave up"):
        policy.call(fn, sleep=c.sleep, clock=c.clock)
    assert c.now <= 5.0
    assert calls[0] == 5.0 and all(r is not None and 0 < r <= 5.0 for r in calls)
    assert len(calls) == 3   # t=0 (1 s), sleep 1, t=2 (1 s), sleep 1, t=4 (1 s); no room for a 4th


def test_single_attempt_policy_raises_the_original_error():
    err = ServerUnavailableError("down")
    fn, _ = failing([err])
    with pytest.raises(ServerUnavailableError) as info:
        RetryPolicy.none().call(fn, sleep=lambda s: None)
    assert info.value is err


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"attempts": True}, {"deadline_s": 0},
                                    {"backoff_base_s": -1}, {"jitter": 2}])
def test_rejects_bad_policies(kwargs):
    with pytest.raises(InvalidInputError):
        RetryPolicy(**kwargs)


def test_jitter_stays_within_bounds():
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=8.0, jitter=0.25)
    for retry in range(1, 8):
        base = min(8.0, 2.0 ** (retry - 1))
        assert all(base * 0.75 <= policy.delay(retry) <= base * 1.25 for _ in range(50))


@pytest.mark.parametrize("status,message,expected", [
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServerUnavailableError),
    ("StatusCode.INTERNAL", "Stub process 'm_0_0' is not healthy.", ServerUnavailableError),
    ("StatusCode.INVALID_ARGUMENT", "attention_mask must contain only 0 and 1", InferenceError),
    ("StatusCode.INTERNAL", "inference failed: boom", InferenceError),
])
def test_transport_classifies_server_errors_for_retry(status, message, expected):
    from tritonclient.utils import InferenceServerException

    from reranker_client.transport import map_exception
    mapped = map_exception(InferenceServerException(message, status=status), "h:1", "m")
    assert type(mapped) is expected and message in str(mapped)


def test_transport_treats_a_dropped_http_connection_as_unavailable():
    from geventhttpclient.response import HTTPConnectionClosed

    from reranker_client.transport import map_exception
    assert isinstance(map_exception(HTTPConnectionClosed("connection closed."), "h:1", "m"),
                      ServerUnavailableError)


def test_async_retry_shares_the_policy():
    import asyncio

    from reranker_client.errors import InvalidInputError, ServerUnavailableError
    from reranker_client.retry import RetryPolicy

    calls = []

    async def flaky(left):
        calls.append(left)
        if len(calls) < 3:
            raise ServerUnavailableError("down")
        return "ok"

    policy = RetryPolicy(attempts=3, backoff_base_s=0.001, backoff_max_s=0.002)
    assert asyncio.run(policy.acall(flaky)) == "ok" and len(calls) == 3

    async def bad(left):
        calls.append(left)
        raise InvalidInputError("no")

    calls.clear()
    try:
        asyncio.run(policy.acall(bad))
    except InvalidInputError:
        pass
    assert len(calls) == 1

    async def down(left):
        raise ServerUnavailableError("still down")

    try:
        asyncio.run(RetryPolicy(attempts=2, backoff_base_s=0.001).acall(down))
        raise AssertionError("expected ServerUnavailableError")
    except ServerUnavailableError as exc:
        assert "gave up after 2 attempt(s)" in str(exc) and "still down" in str(exc)
