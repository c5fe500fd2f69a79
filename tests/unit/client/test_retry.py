"""Retries, state probing and error mapping, run the same way against the sync and the asyncio
client code: RetryPolicy.call / acall, and the four transports (gRPC/HTTP x sync/asyncio) driving
the shared flows over a scripted stand-in for tritonclient's client object."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from reranker_client.errors import (
    InferenceError,
    InvalidInputError,
    ModelNotReadyError,
    ModelReloadingError,
    RequestTimeoutError,
    ServerUnavailableError,
    map_exception,
)
from reranker_client.ops import InferRequest, Tensor, probe_model
from reranker_client.retry import RetryPolicy, is_retryable
from reranker_client.session import infer_flow
from reranker_client.settings import ConnectionSettings

MODES = ["sync", "async"]


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


def run_policy(mode: str, policy: RetryPolicy, fn, clock: FakeClock) -> Any:
    """policy.call (sync) or policy.acall (asyncio) of the same function, clock and sleeps."""
    if mode == "sync":
        return policy.call(fn, sleep=clock.sleep, clock=clock.clock)

    async def afn(remaining):
        return fn(remaining)

    async def asleep(seconds):
        clock.sleep(seconds)

    return asyncio.run(policy.acall(afn, sleep=asleep, clock=clock.clock))


@pytest.mark.parametrize("mode", MODES)
def test_retries_unavailable_then_succeeds_with_exponential_capped_backoff(mode):
    c = FakeClock()
    policy = RetryPolicy(attempts=5, backoff_base_s=0.5, backoff_max_s=1.5, deadline_s=None, jitter=0)
    fn, calls = failing([ServerUnavailableError("down")] * 4)
    assert run_policy(mode, policy, fn, c) == "ok"
    assert len(calls) == 5 and c.sleeps == [0.5, 1.0, 1.5, 1.5]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "exc",
    [
        InvalidInputError("bad"),
        InferenceError("invalid argument"),
        ModelNotReadyError("unknown model"),
        RequestTimeoutError("slow"),
    ],
)
def test_never_retries_final_errors(mode, exc):
    c = FakeClock()
    fn, calls = failing([exc])
    with pytest.raises(type(exc)):
        run_policy(mode, RetryPolicy(attempts=5), fn, c)
    assert len(calls) == 1 and c.sleeps == []


@pytest.mark.parametrize("mode", MODES)
def test_retries_a_model_that_is_being_reloaded(mode):
    c = FakeClock()
    fn, calls = failing([ModelReloadingError("m has no loaded version")])
    assert run_policy(mode, RetryPolicy(attempts=2), fn, c) == "ok" and len(calls) == 2


def test_retry_decisions_go_by_type_not_message():
    assert is_retryable(ModelReloadingError("anything")) and is_retryable(ServerUnavailableError("x"))
    assert not is_retryable(ModelNotReadyError("has no available versions"))  # the message is not consulted
    assert not is_retryable(RequestTimeoutError("unavailable"))


@pytest.mark.parametrize("mode", MODES)
def test_gives_up_after_attempts_with_one_clear_error(mode):
    c = FakeClock()
    fn, calls = failing([ServerUnavailableError("conn refused")] * 10)
    with pytest.raises(ServerUnavailableError, match=r"gave up after 3 attempt\(s\).*conn refused"):
        run_policy(mode, RetryPolicy(attempts=3, jitter=0), fn, c)
    assert len(calls) == 3


@pytest.mark.parametrize("mode", MODES)
def test_deadline_bounds_the_whole_call_and_each_attempt_sees_what_is_left(mode):
    c = FakeClock()
    fn, calls = failing([ServerUnavailableError("down")] * 100, cost=1.0, clock=c)
    policy = RetryPolicy(attempts=100, backoff_base_s=1.0, backoff_max_s=1.0, deadline_s=5.0, jitter=0)
    with pytest.raises(ServerUnavailableError, match="gave up"):
        run_policy(mode, policy, fn, c)
    assert c.now <= 5.0
    assert calls[0] == 5.0 and all(r is not None and 0 < r <= 5.0 for r in calls)
    assert len(calls) == 3  # t=0 (1 s), sleep 1, t=2 (1 s), sleep 1, t=4 (1 s); no room for a 4th


@pytest.mark.parametrize("mode", MODES)
def test_single_attempt_policy_raises_the_original_error(mode):
    err = ServerUnavailableError("down")
    fn, _ = failing([err])
    with pytest.raises(ServerUnavailableError) as info:
        run_policy(mode, RetryPolicy.none(), fn, FakeClock())
    assert info.value is err


@pytest.mark.parametrize(
    "kwargs", [{"attempts": 0}, {"attempts": True}, {"deadline_s": 0}, {"backoff_base_s": -1}, {"jitter": 2}]
)
def test_rejects_bad_policies(kwargs):
    with pytest.raises(InvalidInputError):
        RetryPolicy(**kwargs)


def test_jitter_stays_within_bounds():
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=8.0, jitter=0.25)
    for retry in range(1, 8):
        base = min(8.0, 2.0 ** (retry - 1))
        assert all(base * 0.75 <= policy.delay(retry) <= base * 1.25 for _ in range(50))


# --- one error mapping ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status,message,expected",
    [
        ("StatusCode.UNAVAILABLE", "failed to connect to all addresses", ServerUnavailableError),
        ("StatusCode.INTERNAL", "Stub process 'm_0_0' is not healthy.", ServerUnavailableError),
        (
            "StatusCode.NOT_FOUND",
            "Request for unknown model: 'm' has no available versions",
            ModelReloadingError,
        ),
        ("400", "Request for unknown model: 'm' has no available versions", ModelReloadingError),
        ("StatusCode.NOT_FOUND", "Request for unknown model: 'x' is not found", ModelNotReadyError),
        ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", RequestTimeoutError),
        ("StatusCode.INVALID_ARGUMENT", "attention_mask must contain only 0 and 1", InferenceError),
        ("StatusCode.INTERNAL", "inference failed: boom", InferenceError),
        (
            "StatusCode.UNAVAILABLE",
            "This protocol is restricted, expecting header 'triton-grpc-protocol-k'",
            InferenceError,
        ),
        ("403", "This API is restricted, expecting header 'k'", InferenceError),
    ],
)
def test_server_errors_are_classified_for_retry(status, message, expected):
    mapped = map_exception(InferenceServerException(message, status=status), "h:1", "m")
    assert type(mapped) is expected and message in str(mapped)
    assert isinstance(mapped.__cause__, InferenceServerException)


def test_dropped_connections_are_unavailable_on_every_client_library():
    import aiohttp
    from geventhttpclient.response import HTTPConnectionClosed

    for exc in (
        HTTPConnectionClosed("connection closed."),
        ConnectionRefusedError("refused"),
        aiohttp.ServerDisconnectedError(),
        TimeoutError("connect timed out"),
    ):
        assert isinstance(map_exception(exc, "h:1", "m"), ServerUnavailableError), exc


# --- the four transports over a scripted tritonclient client --------------------------------------


class FakeResult:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def as_numpy(self, name: str):
        return self.arrays.get(name)


class Script:
    """Answers of a fake tritonclient client, per method: values, or exceptions to raise. The
    last answer of a method repeats. Records every call with its keyword arguments."""

    def __init__(self, **answers: list) -> None:
        self.answers = {k: list(v) for k, v in answers.items()}
        self.calls: list[tuple[str, tuple, dict]] = []

    def answer(self, method: str, args: tuple, kwargs: dict) -> Any:
        self.calls.append((method, args, kwargs))
        queue = self.answers[method]
        value = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(value, BaseException):
            raise value
        return value(*args, **kwargs) if callable(value) else value

    def count(self, method: str) -> int:
        return sum(1 for m, _, _ in self.calls if m == method)


class SyncFake:
    def __init__(self, script: Script) -> None:
        self.script = script

    def __getattr__(self, method: str):
        if method == "async_infer":

            def submit(*args, **kwargs):
                try:
                    result = self.script.answer("infer", args, kwargs)
                except Exception as exc:
                    error = exc
                    return type("Pending", (), {"get_result": lambda self: (_ for _ in ()).throw(error)})()
                return type("Pending", (), {"get_result": lambda self: result})()

            return submit
        if method == "close":
            return lambda: None
        return lambda *args, **kwargs: self.script.answer(method, args, kwargs)


class AsyncFake(SyncFake):
    def __getattr__(self, method: str):
        async def call(*args, **kwargs):
            value = self.script.answer(method, args, kwargs)
            return await value if inspect.isawaitable(value) else value

        return call


def unavailable() -> InferenceServerException:
    return InferenceServerException("failed to connect to all addresses", status="StatusCode.UNAVAILABLE")


def no_versions() -> InferenceServerException:
    return InferenceServerException(
        "Request for unknown model: 'm' has no available versions", status="StatusCode.NOT_FOUND"
    )


CONFIG = {"name": "m", "max_batch_size": 8}
INDEX_UNLOADED = [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "unloaded"}]
INDEX_FAILED = [{"name": "m", "version": "1", "state": "UNAVAILABLE", "reason": "failed to load: bad onnx"}]
REQUEST = InferRequest((Tensor("input_ids", "INT64", np.ones((2, 3), np.int64)),), ("scores",), {"k": 1})
SCORES = FakeResult({"scores": np.array([[0.5], [1.5]], np.float32)})


def run_flow(mode: str, protocol: str, script: Script, make_flow, retry: RetryPolicy, **settings: Any):
    """Drive a flow through the real sync or asyncio transport, whose tritonclient client is the script."""
    settings = ConnectionSettings.create("localhost:1", protocol, "m", **settings)
    if mode == "sync":
        from reranker_client.transport import Transport

        transport = Transport(settings)
        transport._clients["localhost:1"] = SyncFake(script)
        try:
            return transport.call(make_flow, retry)
        finally:
            transport.close()

    async def main():
        from reranker_client.aio import AsyncTransport

        transport = AsyncTransport(settings)
        transport._clients["localhost:1"] = AsyncFake(script)
        return await transport.call(make_flow, retry)

    return asyncio.run(main())


def target(model: str = "m", version: str = ""):
    """What infer_flow needs of a scoring core: the model and version it sends to."""
    from types import SimpleNamespace

    return SimpleNamespace(model=model, version=version)


FAST = RetryPolicy(attempts=4, backoff_base_s=0.001, backoff_max_s=0.002)
TRANSPORTS = [(m, p) for m in MODES for p in ("grpc", "http")]


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_probe_rides_through_an_unavailable_server_and_a_reloading_model(mode, protocol):
    index = [dict(INDEX_UNLOADED[0], version="3")]
    script = Script(
        is_server_live=[unavailable(), True],
        is_model_ready=[False, True],
        get_model_repository_index=[index],
        get_model_config=[CONFIG],
    )
    config = run_flow(
        mode,
        protocol,
        script,
        lambda: probe_model("localhost:1", "m", "3"),
        FAST,
        headers={"authorization": "Bearer t"},
        timeout_s=7,
    )
    assert config == CONFIG
    assert script.count("is_server_live") == 3 and script.count("get_model_repository_index") == 1
    ready = [(a, k) for m, a, k in script.calls if m == "is_model_ready"]
    assert all(a == ("m", "3") and k["headers"] == {"authorization": "Bearer t"} for a, k in ready)
    if protocol == "grpc":  # gRPC carries the attempt timeout as a per-call deadline
        assert all(k.get("client_timeout") == 7 for _, _, k in script.calls)


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
@pytest.mark.parametrize(
    "index, expected, match",
    [
        (INDEX_FAILED, ModelNotReadyError, "failed to load: bad onnx"),
        (
            InferenceServerException(
                "This protocol is restricted, expecting header 'triton-grpc-protocol-k'",
                status="StatusCode.UNAVAILABLE",
            ),
            ModelNotReadyError,
            "not readable",
        ),
        ([], ModelNotReadyError, "not in the model repository"),
    ],
)
def test_probe_final_model_states_are_not_retried(mode, protocol, index, expected, match):
    script = Script(
        is_server_live=[True],
        is_model_ready=[False],
        get_model_repository_index=[index],
        get_model_config=[CONFIG],
    )
    with pytest.raises(expected, match=match) as info:
        run_flow(mode, protocol, script, lambda: probe_model("localhost:1", "m"), FAST)
    assert type(info.value) is expected and script.count("is_model_ready") == 1


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_probe_names_a_missing_version(mode, protocol):
    script = Script(
        is_server_live=[True],
        is_model_ready=[False],
        get_model_repository_index=[[{"name": "m", "version": "1", "state": "READY", "reason": ""}]],
    )
    with pytest.raises(ModelNotReadyError, match=r"has no version 7 \(versions: 1\)") as info:
        run_flow(mode, protocol, script, lambda: probe_model("localhost:1", "m", "7"), FAST)
    assert type(info.value) is ModelNotReadyError


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_probe_gives_up_on_a_model_that_stays_unloaded(mode, protocol):
    script = Script(
        is_server_live=[True], is_model_ready=[False], get_model_repository_index=[INDEX_UNLOADED]
    )
    with pytest.raises(
        ServerUnavailableError, match=r"gave up after 4 attempt.*state UNAVAILABLE: unloaded"
    ) as info:
        run_flow(mode, protocol, script, lambda: probe_model("localhost:1", "m"), FAST)
    assert isinstance(info.value.__cause__, ModelReloadingError)


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_infer_retries_the_whole_call_through_a_reload(mode, protocol):
    script = Script(infer=[no_versions(), unavailable(), SCORES])
    answers = run_flow(
        mode, protocol, script, lambda: infer_flow(target("m", "2"), [REQUEST]), FAST, model_version=2
    )
    assert [list(a) for a in answers] == [["scores"]] and answers[0]["scores"].tolist() == [[0.5], [1.5]]
    assert script.count("infer") == 3
    kwargs = script.calls[-1][2]
    assert kwargs["model_version"] == "2" and kwargs["parameters"] == {"k": 1}


@pytest.mark.parametrize("mode,protocol", TRANSPORTS)
def test_server_rejection_is_final_and_keeps_the_message(mode, protocol):
    rejected = InferenceServerException("input_ids: too long", status="StatusCode.INVALID_ARGUMENT")
    script = Script(infer=[rejected, SCORES])
    with pytest.raises(InferenceError, match="input_ids: too long"):
        run_flow(mode, protocol, script, lambda: infer_flow(target(), [REQUEST]), FAST)
    assert script.count("infer") == 1


@pytest.mark.parametrize("mode,protocol", [("sync", "http"), ("async", "grpc"), ("async", "http")])
def test_a_request_past_the_timeout_is_a_request_timeout_not_retried(mode, protocol):
    """The transports that bound requests themselves (gRPC sync hands the deadline to gRPC)."""
    if mode == "sync":
        import gevent

        def slow(*args, **kwargs):
            gevent.sleep(5)
            return SCORES

        script = Script(infer=[slow])
    else:

        async def never(*args, **kwargs):
            await asyncio.sleep(5)

        script = Script(infer=[never])
    with pytest.raises(RequestTimeoutError):
        run_flow(mode, protocol, script, lambda: infer_flow(target(), [REQUEST]), FAST, timeout_s=0.05)
    assert script.count("infer") == 1
