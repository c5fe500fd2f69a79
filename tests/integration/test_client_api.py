"""Client API behaviour against the real server: asyncio variant, errors, model discovery."""

from __future__ import annotations

import asyncio

import pytest

from reranker_client import (
    AsyncRerankerClient,
    InvalidInputError,
    ModelNotReadyError,
    RerankerClient,
    ServerUnavailableError,
    TokenizerMismatchError,
)
from tests.support.pairs import MULTILINGUAL_PAIRS, many_pairs
from tests.support.ports import free_ports


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_async_client_matches_sync_client(triton_server, make_client, protocol):
    pairs = MULTILINGUAL_PAIRS + many_pairs(40)
    sync_scores = make_client("tiny-encoder", protocol).compute_score(pairs, batch_size=8)
    url = triton_server.grpc_url if protocol == "grpc" else triton_server.http_url

    async def run():
        async with await AsyncRerankerClient.connect(url, "tiny-encoder", protocol) as client:
            scores, ranked = await asyncio.gather(
                client.compute_score(pairs, batch_size=8),
                client.rerank(pairs[0][0], [p for _, p in pairs[:5]], top_n=2),
            )
            return scores, ranked

    scores, ranked = asyncio.run(run())
    assert max(abs(a - b) for a, b in zip(scores, sync_scores)) < 1e-6
    assert len(ranked) == 2 and ranked[0].score >= ranked[1].score


@pytest.mark.parametrize(
    "bad, message",
    [
        ([], "empty"),
        ([["q", 3]], "must be a str"),
        ([["q"]], "two strings"),
        ([["q", ""]], "empty"),
        ([["q", "bad \udcff surrogate"]], "not valid Unicode"),
        ("just a string", "pair"),
    ],
)
def test_invalid_pairs_are_rejected_before_sending(make_client, bad, message):
    with pytest.raises(InvalidInputError, match=message):
        make_client("tiny-encoder").compute_score(bad)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_length": 0}, "max_length"),
        ({"max_length": "512"}, "max_length"),
        ({"query_max_length": -1}, "query_max_length"),
        ({"batch_size": 0}, "batch_size"),
        ({"cutoff_layers": [2]}, "unknown option"),
    ],
)
def test_invalid_arguments_are_rejected(make_client, kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        make_client("tiny-encoder").compute_score([["q", "p"]], **kwargs)


def test_max_length_beyond_model_is_a_clear_error(make_client):
    long_pair = [["panda " * 10, "bamboo " * 100]]
    with pytest.raises(InvalidInputError, match="24"):
        make_client("tiny-encoder-short").compute_score(long_pair, max_length=100)


def test_rerank_arguments_are_checked(make_client):
    client = make_client("tiny-encoder")
    with pytest.raises(InvalidInputError, match="passages"):
        client.rerank("q", [])
    with pytest.raises(InvalidInputError, match="top_n"):
        client.rerank("q", ["p"], top_n=0)


def test_unknown_model_is_reported(triton_server):
    with pytest.raises(ModelNotReadyError, match="no-such-model"):
        RerankerClient(triton_server.grpc_url, "no-such-model", "grpc")


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_unreachable_server_is_reported(protocol):
    (port,) = free_ports(1)
    with pytest.raises(ServerUnavailableError, match="unreachable|not live"):
        RerankerClient(f"localhost:{port}", "tiny-encoder", protocol, timeout_s=5)


def test_bad_protocol_is_rejected(triton_server):
    with pytest.raises(InvalidInputError, match="protocol"):
        RerankerClient(triton_server.grpc_url, "tiny-encoder", "smtp")


def test_tokenizer_other_than_the_exported_one_is_refused(triton_server, test_repository):
    other = test_repository.root / "tiny-encoder-short" / "tokenizer" / "tokenizer.json"
    wrong = other.read_text().replace('"<mask>"', '"<MASK>"')
    path = test_repository.root.parent / "wrong-tokenizer.json"
    path.write_text(wrong)
    with pytest.raises(TokenizerMismatchError, match="not the tokenizer"):
        RerankerClient(triton_server.grpc_url, "tiny-encoder", "grpc", tokenizer_path=str(path))


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_async_client_retries_then_reports_one_error(protocol):
    from reranker_client.retry import RetryPolicy

    (port,) = free_ports(1)

    async def connect():
        await AsyncRerankerClient.connect(
            f"localhost:{port}",
            "tiny-encoder",
            protocol,
            timeout_s=5,
            retry=RetryPolicy(attempts=2, backoff_base_s=0.01),
        )

    with pytest.raises(ServerUnavailableError, match="gave up after 2 attempt"):
        asyncio.run(connect())


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_model_version_is_sent_and_a_missing_one_is_named(triton_server, make_client, protocol):
    pairs = many_pairs(6)
    assert make_client("tiny-encoder", protocol, model_version=1).compute_score(pairs) == pytest.approx(
        make_client("tiny-encoder", protocol).compute_score(pairs), abs=1e-6
    )
    with pytest.raises(ModelNotReadyError, match=r"no version 2 \(versions: 1\)"):
        make_client("tiny-encoder", protocol, model_version=2)
    with pytest.raises(InvalidInputError, match="model_version"):
        make_client("tiny-encoder", protocol, model_version="latest")
