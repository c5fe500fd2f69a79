"""The rerank HTTP API's wire shapes (TEI, Cohere v1/v2, NVIDIA NIM) against an in-process fake
backend: field names, defaults, ordering, score meaning, and what reaches the model."""

from __future__ import annotations

import math

import pytest

from reranker_core.families import GEMMA2_LIGHTWEIGHT
from tests.support.api_server import api_client
from tests.support.fake_api_backend import FakeBackend, fake_logit, fake_model, sigmoid

QUERY = "what is a panda"
TEXTS = ["hi there", "the giant panda is a bear", "a panda", "what is a panda bear"]


@pytest.fixture
def backend():
    return FakeBackend()


@pytest.fixture
def client(backend):
    with api_client(backend) as c:
        yield c


def expected_order(scores, ties_high_first=False):
    keyed = sorted(range(len(scores)), key=lambda i: (-scores[i], -i if ties_high_first else i))
    return keyed


# --- TEI ------------------------------------------------------------------------------------------


def test_tei_returns_every_text_best_first_with_sigmoid_scores(client, backend):
    r = client.post("/rerank", json={"query": QUERY, "texts": TEXTS})
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list) and len(body) == len(TEXTS)
    logits = [fake_logit(QUERY, t) for t in TEXTS]
    assert [item["index"] for item in body] == expected_order(logits, ties_high_first=True)
    for item in body:
        assert set(item) == {"index", "score"}
        assert item["score"] == pytest.approx(sigmoid(logits[item["index"]]), abs=1e-6)
    (call,) = backend.calls
    assert call.options.normalize and call.options.truncate
    assert call.query == QUERY and call.passages == TEXTS


def test_tei_raw_scores_return_text_and_ignored_unknown_keys(client, backend):
    r = client.post(
        "/rerank",
        json={
            "query": QUERY,
            "texts": TEXTS,
            "raw_scores": True,
            "return_text": True,
            "top_n": 1,
            "something_else": {"a": 1},
        },
    )
    assert r.status_code == 200
    body = r.json()
    assert len(body) == len(TEXTS)  # TEI ignores top_n
    for item in body:
        assert item["text"] == TEXTS[item["index"]]
        assert item["score"] == pytest.approx(fake_logit(QUERY, item["text"]), abs=1e-6)
    assert not backend.calls[0].options.normalize


def test_tei_equal_scores_put_the_higher_index_first(backend):
    backend.fixed_scores = [0.5, 2.0, 0.5, 2.0]
    with api_client(backend) as c:
        body = c.post(
            "/rerank", json={"query": "q", "texts": ["a", "b", "c", "d"], "raw_scores": True}
        ).json()
    assert [i["index"] for i in body] == [3, 1, 2, 0]


def test_tei_truncate_false_reaches_the_model_and_over_length_is_422(client, backend):
    long_text = "panda " * 100
    r = client.post("/rerank", json={"query": QUERY, "texts": ["short", long_text], "truncate": False})
    assert r.status_code == 422
    assert r.json()["error_type"] == "Validation" and "max_length" in r.json()["error"]
    assert backend.calls[-1].options.truncate is False
    r = client.post("/rerank", json={"query": QUERY, "texts": ["short", long_text], "truncate": None})
    assert r.status_code == 200 and backend.calls[-1].options.truncate is True


@pytest.mark.parametrize("direction", ["Left", "left"])
def test_tei_left_truncation_is_refused_when_truncating(client, direction):
    r = client.post("/rerank", json={"query": "q", "texts": ["a"], "truncation_direction": direction})
    assert r.status_code == 422 and "Left" in r.json()["error"]
    r = client.post(
        "/rerank", json={"query": "q", "texts": ["a"], "truncation_direction": direction, "truncate": False}
    )
    assert r.status_code == 200


@pytest.mark.parametrize("path", ["/", "/invocations"])
def test_tei_aliases(client, path):
    r = client.post(path, json={"query": QUERY, "texts": TEXTS})
    assert r.status_code == 200 and len(r.json()) == len(TEXTS)


def test_tei_what_litellm_sends(client):
    """LiteLLM's huggingface/ rerank body: truncate false, Right, return_text true, top_n."""
    r = client.post(
        "/rerank",
        json={
            "query": QUERY,
            "texts": TEXTS,
            "raw_scores": False,
            "truncate": False,
            "truncation_direction": "Right",
            "return_text": True,
            "top_n": 2,
        },
    )
    assert r.status_code == 200 and len(r.json()) == len(TEXTS)
    assert all("text" in item for item in r.json())


# --- Cohere ---------------------------------------------------------------------------------------


def test_cohere_v2_shape_top_n_and_relevance_scores(client, backend):
    r = client.post(
        "/v2/rerank", json={"model": "fake-reranker", "query": QUERY, "documents": TEXTS, "top_n": 2}
    )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "results", "meta"} and body["id"]
    assert body["meta"] == {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}
    logits = [fake_logit(QUERY, t) for t in TEXTS]
    assert [x["index"] for x in body["results"]] == expected_order(logits)[:2]
    for item in body["results"]:
        assert set(item) == {"index", "relevance_score"}
        assert 0.0 <= item["relevance_score"] <= 1.0
        assert item["relevance_score"] == pytest.approx(sigmoid(logits[item["index"]]), abs=1e-6)
    assert backend.calls[0].options.normalize


def test_cohere_equal_scores_keep_index_order(backend):
    backend.fixed_scores = [0.5, 2.0, 0.5, 2.0]
    with api_client(backend) as c:
        body = c.post(
            "/v2/rerank", json={"model": "fake-reranker", "query": "q", "documents": list("abcd")}
        ).json()
    assert [i["index"] for i in body["results"]] == [1, 3, 0, 2]


def test_cohere_nulls_default_and_top_n_over_n(client):
    r = client.post(
        "/v2/rerank",
        json={
            "model": None,
            "query": QUERY,
            "documents": TEXTS,
            "top_n": 99,
            "max_tokens_per_doc": None,
            "priority": None,
            "return_documents": None,
        },
    )
    assert r.status_code == 200 and len(r.json()["results"]) == len(TEXTS)


def test_cohere_max_tokens_per_doc_caps_max_length_at_the_models_positions(client, backend):
    client.post(
        "/v2/rerank",
        json={"model": "fake-reranker", "query": "q", "documents": ["a"], "max_tokens_per_doc": 64},
    )
    client.post(
        "/v2/rerank",
        json={"model": "fake-reranker", "query": "q", "documents": ["a"], "max_tokens_per_doc": 4096},
    )
    assert [c.options.max_length for c in backend.calls] == [64, 200]


def test_cohere_v1_object_documents_return_documents_and_rank_fields(client, backend):
    docs = [{"text": "a panda", "id": "x1"}, "what is a panda bear", {"text": "hi", "title": "t"}]
    r = client.post(
        "/v1/rerank",
        json={"query": QUERY, "documents": docs, "return_documents": True, "max_chunks_per_doc": 10},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["meta"]["api_version"]["version"] == "1"
    by_index = {x["index"]: x for x in body["results"]}
    assert by_index[0]["document"] == docs[0] and by_index[1]["document"] == {"text": docs[1]}
    assert backend.calls[-1].passages == ["a panda", "what is a panda bear", "hi"]
    r = client.post(
        "/v1/rerank",
        json={
            "query": QUERY,
            "documents": [{"title": "Panda", "text": "bear"}],
            "rank_fields": ["title", "text"],
        },
    )
    assert r.status_code == 200 and backend.calls[-1].passages == ["title: Panda\ntext: bear"]
    r = client.post("/v1/rerank", json={"query": QUERY, "documents": [{"title": "Panda"}]})
    assert r.status_code == 400 and "documents[0]" in r.json()["message"]


def test_cohere_model_aliases_and_unknown_model(client):
    for name in ("fake-reranker", "fake-reranker-text", "BAAI/fake-reranker"):
        assert (
            client.post("/v2/rerank", json={"model": name, "query": "q", "documents": ["a"]}).status_code
            == 200
        )
    r = client.post("/v2/rerank", json={"model": "rerank-v3.5", "query": "q", "documents": ["a"]})
    assert (
        r.status_code == 404
        and "rerank-v3.5" in r.json()["message"]
        and "fake-reranker" in r.json()["message"]
    )


def test_cohere_errors_are_message_objects(client):
    r = client.post("/v2/rerank", json={"model": "fake-reranker", "query": "q", "documents": []})
    assert r.status_code == 400 and set(r.json()) == {"message"}
    r = client.post(
        "/v2/rerank", json={"model": "fake-reranker", "query": "q", "documents": ["a"], "top_n": 0}
    )
    assert r.status_code == 400 and "top_n" in r.json()["message"]


# --- NIM ------------------------------------------------------------------------------------------


def test_nim_ranking_raw_logits_best_first(client, backend):
    r = client.post(
        "/v1/ranking",
        json={
            "model": "fake-reranker",
            "query": {"text": QUERY},
            "passages": [{"text": t} for t in TEXTS],
            "truncate": "END",
        },
    )
    assert r.status_code == 200
    rankings = r.json()["rankings"]
    logits = [fake_logit(QUERY, t) for t in TEXTS]
    assert [x["index"] for x in rankings] == expected_order(logits)
    for x in rankings:
        assert x["logit"] == pytest.approx(logits[x["index"]], abs=1e-6)
    assert not backend.calls[0].options.normalize and backend.calls[0].options.truncate


def test_nim_truncate_defaults_to_none_and_over_length_is_400(client, backend):
    r = client.post("/v1/ranking", json={"query": {"text": QUERY}, "passages": [{"text": "x " * 150}]})
    assert r.status_code == 400 and "max_length" in r.json()["error"]
    assert backend.calls[-1].options.truncate is False
    r = client.post(
        "/v1/ranking", json={"query": {"text": QUERY}, "passages": [{"text": "panda"}], "truncate": "MIDDLE"}
    )
    assert r.status_code == 400 and "truncate" in r.json()["error"]


# --- extra fields and model choice ----------------------------------------------------------------


def test_extra_fields_reach_the_model():
    backend = FakeBackend(models_served=[fake_model("fake-reranker", GEMMA2_LIGHTWEIGHT)])
    with api_client(backend) as client:
        r = client.post(
            "/v2/rerank",
            json={
                "model": "fake-reranker",
                "query": QUERY,
                "documents": TEXTS,
                "prompt": "Is B relevant to A?",
                "cutoff_layers": [8, 12],
                "compress_ratio": 2,
                "compress_layers": [4],
                "max_length": 128,
                "query_max_length": 32,
                "long_passages": "max_window",
                "window_stride": 16,
            },
        )
    assert r.status_code == 200, r.text
    options = backend.calls[-1].options
    assert (options.prompt, options.cutoff_layers, options.compress_ratio, options.compress_layers) == (
        "Is B relevant to A?",
        (8, 12),
        2,
        (4,),
    )
    assert (options.max_length, options.query_max_length, options.long_passages, options.window_stride) == (
        128,
        32,
        "max_window",
        16,
    )
    # Several cutoff layers: ranked by the deepest (the last row).
    logits = [fake_logit(QUERY, t) + 0.1 for t in TEXTS]
    assert [x["relevance_score"] for x in r.json()["results"]] == pytest.approx(
        sorted((sigmoid(x) for x in logits), reverse=True), abs=1e-6
    )


def test_options_are_checked_against_the_model_by_the_api(backend):
    """Once, in the API, against the served model's manifest: no request reaches the model."""
    cases = [
        ({"prompt": "Is B relevant?"}, "unknown option(s) prompt: encoder models accept"),
        ({"max_length": 1}, "max_length 1 leaves no room for the query"),
    ]
    with api_client(backend) as client:
        for extra, message in cases:
            r = client.post("/rerank", json={"query": "q", "texts": ["a"], **extra})
            assert r.status_code == 422 and message in r.json()["error"], r.text
    layered = FakeBackend(models_served=[fake_model("m", GEMMA2_LIGHTWEIGHT)])
    with api_client(layered) as client:
        body = {"query": {"text": "q"}, "passages": [{"text": "a"}], "cutoff_layers": [99]}
        r = client.post("/v1/ranking", json=body)
        assert r.status_code == 400 and "99" in r.json()["error"], r.text
    assert backend.calls == [] and layered.calls == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"cutoff_layers": "8"}, "cutoff_layers"),
        ({"compress_ratio": 2.5}, "compress_ratio"),
        ({"long_passages": "chunks"}, "long_passages"),
        ({"max_length": 0}, "max_length"),
        ({"prompt": 3}, "prompt"),
        ({"raw_scores": "true"}, "raw_scores"),
    ],
)
def test_extra_fields_are_type_checked(client, body, field):
    r = client.post("/rerank", json={"query": "q", "texts": ["a"], **body})
    assert r.status_code == 422 and field in r.json()["error"]


def test_server_long_passage_policy_is_the_default(backend):
    with api_client(backend, long_passages="max_window") as c:
        c.post("/rerank", json={"query": "q", "texts": ["a"]})
        c.post("/rerank", json={"query": "q", "texts": ["a"], "long_passages": "truncate"})
    assert [call.options.long_passages for call in backend.calls] == ["max_window", "truncate"]


def test_default_model_rules():
    two = FakeBackend(models_served=[fake_model("a"), fake_model("b")])
    with api_client(two) as c:
        r = c.post("/rerank", json={"query": "q", "texts": ["x"]})
        assert r.status_code == 422 and "a, b" in r.json()["error"]
        assert c.post("/v2/rerank", json={"model": "b", "query": "q", "documents": ["x"]}).status_code == 200
        assert c.post("/rerank", json={"query": "q", "texts": ["x"], "model": "a"}).status_code == 200
    with api_client(two, default_model="b") as c:
        assert c.post("/rerank", json={"query": "q", "texts": ["x"]}).status_code == 200
    assert [call.model for call in two.calls] == ["b", "a", "b"]


def test_scores_are_plain_json_numbers(client):
    text = client.post("/rerank", json={"query": QUERY, "texts": TEXTS}).text
    assert "NaN" not in text and "Infinity" not in text
    assert all(
        math.isfinite(x["score"])
        for x in client.post("/rerank", json={"query": QUERY, "texts": TEXTS}).json()
    )
