"""tokenize="client" (token ids to `<name>`) and tokenize="server" (text to `<name>-text`) give the
same scores, through the real embedded server, for every family, both protocols and both clients;
"auto" picks the local tokenizer when it is at hand and the text model when it is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from reranker_client.errors import InvalidInputError
from tests.support.async_bridge import make_client
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs

PROMPT = "Is passage B relevant to query A? Answer Yes or No."
PAIRS = [list(p) for p in TUTORIAL_PAIRS + MULTILINGUAL_PAIRS] + many_pairs(30)
QUERY = "what is panda?"
PASSAGES = list(dict.fromkeys(p for _, p in TUTORIAL_PAIRS + MULTILINGUAL_PAIRS))
TOLERANCE = 1e-5
CASES = [
    ("tiny-encoder", {}),
    ("tiny-encoder", {"normalize": True, "max_length": 20, "query_max_length": 5, "batch_size": 7}),
    ("tiny-encoder-short", {"max_length": 12, "query_max_length": 4}),
    ("tiny-gemma", {"prompt": PROMPT}),
    ("tiny-layerwise", {"cutoff_layers": [3, 6]}),
    ("tiny-lightweight", {"cutoff_layers": [6], "compress_ratio": 2, "compress_layers": [2]}),
]
CLIENTS = [("sync", "grpc"), ("sync", "http"), ("async", "grpc"), ("async", "http")]


def url_of(server, protocol: str) -> str:
    return server.grpc_url if protocol == "grpc" else server.http_url


@pytest.fixture
def clients(triton_server, test_repository):
    made = []

    def factory(mode: str, protocol: str, model: str, **kwargs):
        client = make_client(mode, url_of(triton_server, protocol), model, protocol, **kwargs)
        made.append(client)
        return client

    yield factory
    for client in made:
        client.close()


def rows(scores) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float64)
    return array.reshape(1, -1) if array.ndim == 1 else array


@pytest.mark.parametrize("mode,protocol", CLIENTS)
@pytest.mark.parametrize("model,kwargs", CASES, ids=[f"{m}-{'-'.join(k) or 'default'}" for m, k in CASES])
def test_client_and_server_tokenization_give_the_same_scores(
    clients, test_repository, mode, protocol, model, kwargs
):
    local = clients(mode, protocol, model, tokenize="client", model_repository=str(test_repository.root))
    remote = clients(mode, protocol, model, tokenize="server")
    assert (local.tokenize, remote.tokenize) == ("client", "server")
    want, got = rows(local.compute_score(PAIRS, **kwargs)), rows(remote.compute_score(PAIRS, **kwargs))
    assert got.shape == want.shape == (len(kwargs.get("cutoff_layers", [0])), len(PAIRS))
    assert np.abs(got - want).max() <= TOLERANCE
    one = {k: v for k, v in kwargs.items() if k != "batch_size"}
    if len(kwargs.get("cutoff_layers", [0])) == 1:
        ranked_local = local.rerank(
            QUERY, PASSAGES, top_n=5, **{k: v for k, v in one.items() if k != "normalize"}
        )
        ranked_remote = remote.rerank(
            QUERY, PASSAGES, top_n=5, **{k: v for k, v in one.items() if k != "normalize"}
        )
        assert [r.index for r in ranked_remote] == [r.index for r in ranked_local]
        assert [r.score for r in ranked_remote] == pytest.approx(
            [r.score for r in ranked_local], abs=TOLERANCE
        )


def test_the_text_model_can_be_named_directly(clients, test_repository):
    by_token = clients(
        "sync", "grpc", "tiny-encoder", tokenize="client", model_repository=str(test_repository.root)
    )
    by_text = clients(
        "sync", "grpc", "tiny-encoder-text", tokenize="auto", model_repository=str(test_repository.root)
    )
    text_only = clients("sync", "http", "tiny-encoder-text", tokenize="server")
    assert by_text.tokenize == "client" and text_only.tokenize == "server"
    want = by_token.compute_score(PAIRS)
    assert by_text.compute_score(PAIRS) == pytest.approx(want, abs=TOLERANCE)
    assert text_only.compute_score(PAIRS) == pytest.approx(want, abs=TOLERANCE)


def test_auto_tokenizes_locally_when_it_can_and_sends_text_when_it_cannot(clients, test_repository):
    local = clients("sync", "grpc", "tiny-encoder", model_repository=str(test_repository.root))
    assert local.tokenize == "client"
    manifest = local.manifest
    source = Path(manifest.tokenizer.source or manifest.source) / "tokenizer.json"
    hidden = source.with_name("tokenizer.json.hidden")
    assert source.is_file(), "the test export records its checkpoint directory as the tokenizer source"
    source.rename(hidden)  # a host without the tokenizer files (the hub is offline in tests)
    try:
        remote = clients("sync", "grpc", "tiny-encoder")
        assert remote.tokenize == "server"
        assert remote.compute_score(PAIRS) == pytest.approx(local.compute_score(PAIRS), abs=TOLERANCE)
    finally:
        hidden.rename(source)


def test_server_mode_checks_arguments_before_sending(clients):
    remote = clients("sync", "grpc", "tiny-encoder", tokenize="server")
    with pytest.raises(InvalidInputError, match="empty"):
        remote.compute_score([["q", " "]])
    with pytest.raises(InvalidInputError, match="unknown option|unexpected argument"):
        remote.compute_score([["q", "p"]], cutoff_layers=[2])
