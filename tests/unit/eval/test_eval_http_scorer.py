"""reranker_eval's TEI and Cohere scorer: request bodies, answers mapped back to input order, and
clear errors for refusals and malformed answers (httpx's mock transport, no server)."""

from __future__ import annotations

import json

import httpx
import pytest

from reranker_eval.configs import from_spec
from reranker_eval.errors import EvalError
from reranker_eval.scorers import HttpScorer


def scorer(spec: str, handler) -> tuple[HttpScorer, list[dict]]:
    seen: list[dict] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(
            {
                "url": str(request.url),
                "auth": request.headers.get("authorization"),
                **json.loads(request.content),
            }
        )
        return handler(request)

    (config,) = from_spec(spec)
    return HttpScorer(config, transport=httpx.MockTransport(record)), seen


def test_tei_body_and_answer_in_input_order(monkeypatch):
    monkeypatch.setenv("KEY_VAR", "k1")
    answer = [{"index": 1, "score": 0.9}, {"index": 0, "score": 0.2}]
    s, seen = scorer(
        "tei://h:8080?model=m&cutoff_layers=4&max_length=64&api_key_env=KEY_VAR",
        lambda r: httpx.Response(200, json=answer),
    )
    assert s.score("q", ["a", "b"]) == [0.2, 0.9]
    assert seen == [
        {
            "url": "http://h:8080/rerank",
            "auth": "Bearer k1",
            "query": "q",
            "texts": ["a", "b"],
            "model": "m",
            "cutoff_layers": [4],
            "max_length": 64,
        }
    ]


def test_cohere_body_and_answer():
    answer = {
        "results": [
            {"index": 2, "relevance_score": 0.5},
            {"index": 0, "relevance_score": 0.4},
            {"index": 1, "relevance_score": 0.1},
        ]
    }
    s, seen = scorer("cohere://h:1?model=m", lambda r: httpx.Response(200, json=answer))
    assert s.score("q", ["a", "b", "c"]) == [0.4, 0.1, 0.5]
    assert seen[0]["url"] == "http://h:1/v1/rerank" and seen[0]["documents"] == ["a", "b", "c"]
    assert seen[0]["top_n"] == 3 and seen[0]["auth"] is None


@pytest.mark.parametrize(
    "response, message",
    [
        (
            httpx.Response(422, json={"error": "cutoff_layers is not an option of encoder models"}),
            "HTTP 422: .*cutoff_layers",
        ),
        (httpx.Response(200, json=[{"index": 0, "score": 1.0}]), "did not score every passage"),
        (httpx.Response(200, json=[{"index": 7, "score": 1.0}]), "unexpected answer"),
        (httpx.Response(200, text="not json"), "unexpected answer"),
    ],
)
def test_refusals_and_bad_answers_are_named(response, message):
    s, _ = scorer("tei://h:1?label=mine", lambda r: response)
    with pytest.raises(EvalError, match=f"mine: .*{message}"):
        s.score("q", ["a", "b"])


def test_missing_api_key_variable_is_named(monkeypatch):
    monkeypatch.delenv("NO_SUCH_VAR", raising=False)
    (config,) = from_spec("tei://h:1?api_key_env=NO_SUCH_VAR")
    with pytest.raises(EvalError, match="environment variable NO_SUCH_VAR is not set"):
        HttpScorer(config)
