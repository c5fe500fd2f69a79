"""Load through the rerank HTTP API (its own process) on the real embedded Triton server: many
clients, all three wire shapes, several models, every score equal to the pair scored alone, no
error; then Triton killed and restarted under load: callers get clean 503s (Retry-After), never a
wrong or partial answer, and correct scores again once Triton is back."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx

from tests.support.api_server import ApiProcess, private_triton
from tests.support.load.api_load import ApiLoadReport, reference_scores, run_api_load
from tests.support.load.servers import start_private_server
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs

QUERIES = ["what is panda?", "What is the capital of France?", "大熊猫是什么？", "q"]
PASSAGES = (
    [p for _, p in MULTILINGUAL_PAIRS]
    + [p for _, p in TUTORIAL_PAIRS[:2]]
    + [p for _, p in many_pairs(6)]
    + ["panda " * 300]
)
# model -> extra fields of every request (tiny-encoder-short has 24 positions)
MODELS = {"tiny-encoder": {}, "tiny-encoder-short": {"max_length": 20}, "tiny-gemma": {}}


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll (a trigger for the next step, not a timing assertion)."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_load_through_the_api_all_shapes_several_models(test_repository, tmp_path):
    with private_triton(test_repository.root, tmp_path, "api-load", MODELS) as triton:
        reference = reference_scores(triton.grpc_url, MODELS, QUERIES, PASSAGES)
        api = ApiProcess(
            triton.grpc_url, ["--max-concurrent-requests", "64"], log_file=tmp_path / "api.log"
        ).start()
        try:
            report = run_api_load(
                api.url, {}, MODELS, QUERIES, PASSAGES, reference, workers=8, max_requests=120
            )
        finally:
            api.stop()
    print("api load:", report.summary())
    assert report.ok == 120 and not report.failures and not report.mismatches, report.summary()
    assert report.statuses == {200: 120}


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_triton_killed_and_restarted_under_load(test_repository, tmp_path):
    models = ("tiny-encoder", "tiny-encoder-text")
    server = start_private_server(test_repository.root, tmp_path, "api-fault", models)
    ports = (server.http_port, server.grpc_port, server.metrics_port)
    reference = reference_scores(server.grpc_url, {"tiny-encoder": {}}, QUERIES, PASSAGES)
    api = ApiProcess(
        server.grpc_url,
        ["--default-model", "tiny-encoder", "--retry-after", "1", "--request-timeout", "60"],
        log_file=tmp_path / "api.log",
    ).start()
    report, stop = ApiLoadReport(), threading.Event()
    load = threading.Thread(
        target=run_api_load,
        args=(api.url, {}, {"tiny-encoder": {}}, QUERIES, PASSAGES, reference),
        kwargs={
            "workers": 4,
            "max_requests": 10_000,
            "duration_s": 400,
            "allow_503": True,
            "stop": stop,
            "report": report,
            "seed": 7,
        },
    )
    restarted = None
    try:
        load.start()
        wait_until(lambda: report.ok >= 8, 120, "load to start")
        os.killpg(server.process.pid, signal.SIGKILL)  # tritonserver and its stubs, no clean shutdown
        server.process.wait()
        server.stop()
        wait_until(lambda: report.unavailable >= 3, 60, "callers to see 503")
        assert not healthy(api.url)
        restarted = start_private_server(
            test_repository.root, tmp_path, "api-fault-restarted", models, ports=ports
        )
        wait_until(lambda: healthy(api.url), 60, "the API to see Triton again")
        report.mark()
        wait_until(lambda: report.ok_after_mark >= 12, 120, "load to go on after the restart")
    finally:
        stop.set()
        load.join(timeout=300)
        api.stop()
        if restarted is not None:
            restarted.stop()
        else:
            server.stop()
    print("api under a Triton kill:", report.summary())
    assert not load.is_alive(), "a caller hung"
    assert not report.failures and not report.mismatches, report.summary()
    assert set(report.statuses) == {200, 503} and report.unavailable >= 3 and report.ok_after_mark >= 12
