"""The rerank HTTP API as users run it (`python -m reranker_api`, its own process) in front of the
real embedded Triton server and its `<name>-text` models: scores in every wire shape equal to
FlagEmbedding's, real third-party clients, model errors, hostile bodies, health and metrics."""

from __future__ import annotations

import json
import socket
import urllib.parse

import httpx
import pytest

from tests.support.api_clients import CLIENTS
from tests.support.api_server import ApiProcess, private_triton
from tests.support.oracle import run_oracle
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS

KEY = "integration-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY = "what is panda?"
PASSAGES = [p for _, p in MULTILINGUAL_PAIRS] + [p for _, p in TUTORIAL_PAIRS[:2]]
PROMPT = "Is passage B relevant to query A? Answer Yes or No."
TOL = 1e-4
# (served model, oracle kind, extra API fields == compute_score kwargs)
CASES = [
    ("tiny-encoder", "encoder", {}),
    ("tiny-encoder", "encoder", {"max_length": 16, "query_max_length": 6}),
    ("tiny-gemma", "llm", {"prompt": PROMPT}),
    ("tiny-gemma", "llm", {"max_length": 20, "query_max_length": 8}),
]
SERVED = ("tiny-encoder", "tiny-encoder-short", "tiny-gemma")


@pytest.fixture(scope="module")
def api(test_repository, tmp_path_factory):
    work = tmp_path_factory.mktemp("api")
    (work / "keys").write_text(KEY + "\n")
    with private_triton(test_repository.root, work, "api-service", SERVED) as triton:
        proc = ApiProcess(
            triton.grpc_url,
            ["--default-model", "tiny-encoder", "--api-keys-file", str(work / "keys")],
            log_file=work / "api.log",
        ).start()
        yield proc
        proc.stop()


@pytest.fixture(scope="module")
def http(api):
    with httpx.Client(base_url=api.url, headers=AUTH, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def expected(test_repository):
    jobs = []
    for model, kind, kwargs in CASES:
        for normalize in (False, True):
            jobs.append(
                {
                    "kind": kind,
                    "model": str(test_repository.checkpoint(model)),
                    "pairs": [[QUERY, p] for p in PASSAGES],
                    "score": {**kwargs, "normalize": normalize},
                }
            )
    results = run_oracle(jobs)
    out = {}
    for i, (model, _, kwargs) in enumerate(CASES):
        out[(model, json.dumps(kwargs))] = (results[2 * i]["scores"], results[2 * i + 1]["scores"])
    return out


def best_first(scores):
    return sorted(range(len(scores)), key=lambda i: -scores[i])


@pytest.mark.parametrize(
    "model, kind, kwargs", CASES, ids=[f"{m}-{'-'.join(k) or 'default'}" for m, _, k in CASES]
)
def test_every_shape_scores_like_flagembedding(http, expected, model, kind, kwargs):
    raw, sigmoid = expected[(model, json.dumps(kwargs))]
    n = len(PASSAGES)
    tei = http.post(
        "/rerank", json={"model": model, "query": QUERY, "texts": PASSAGES, "return_text": True, **kwargs}
    )
    assert tei.status_code == 200, tei.text
    assert len(tei.json()) == n and [x["text"] for x in tei.json()] == [
        PASSAGES[x["index"]] for x in tei.json()
    ]
    assert {x["index"]: x["score"] for x in tei.json()} == pytest.approx(dict(enumerate(sigmoid)), abs=TOL)
    tei_raw = http.post(
        "/rerank", json={"model": model, "query": QUERY, "texts": PASSAGES, "raw_scores": True, **kwargs}
    )
    assert {x["index"]: x["score"] for x in tei_raw.json()} == pytest.approx(dict(enumerate(raw)), abs=TOL)
    for version in ("v2", "v1"):
        co = http.post(
            f"/{version}/rerank",
            json={"model": model, "query": QUERY, "documents": PASSAGES, "top_n": 3, **kwargs},
        )
        assert co.status_code == 200, co.text
        results = co.json()["results"]
        assert [r["index"] for r in results] == best_first(sigmoid)[:3]
        assert [r["relevance_score"] for r in results] == pytest.approx(
            [sigmoid[i] for i in best_first(sigmoid)[:3]], abs=TOL
        )
    nim = http.post(
        "/v1/ranking",
        json={
            "model": model,
            "query": {"text": QUERY},
            "truncate": "END",
            "passages": [{"text": p} for p in PASSAGES],
            **kwargs,
        },
    )
    assert nim.status_code == 200, nim.text
    assert [r["index"] for r in nim.json()["rankings"]] == best_first(raw)
    assert {r["index"]: r["logit"] for r in nim.json()["rankings"]} == pytest.approx(
        dict(enumerate(raw)), abs=TOL
    )


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_third_party_clients_get_flagembedding_scores(api, expected, name):
    _, sigmoid = expected[("tiny-encoder", "{}")]
    ranked = CLIENTS[name](api.url, KEY, "tiny-encoder", QUERY, PASSAGES)
    assert [i for i, _ in ranked] == best_first(sigmoid)
    assert [s for _, s in ranked] == pytest.approx([sigmoid[i] for i in best_first(sigmoid)], abs=TOL)


def test_models_health_and_metrics(http, api):
    models = {m["id"]: m for m in http.get("/v1/models").json()["data"]}
    assert {"tiny-encoder", "tiny-encoder-short", "tiny-gemma"} <= set(models)
    assert (
        models["tiny-encoder"]["family"] == "encoder"
        and "tiny-encoder-text" in models["tiny-encoder"]["aliases"]
    )
    assert httpx.get(api.url + "/health").status_code == 200  # open without a key
    before = pairs_counted(httpx.get(api.url + "/metrics").text)
    assert (
        http.post("/rerank", json={"query": QUERY, "texts": PASSAGES[:3]}).status_code == 200
    )  # default model
    assert pairs_counted(httpx.get(api.url + "/metrics").text) == before + 3


def pairs_counted(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith('reranker_api_pairs_total{model="tiny-encoder"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_model_errors_name_the_problem(http):
    r = http.post(
        "/v2/rerank", json={"model": "tiny-gemma", "query": QUERY, "documents": ["a"], "cutoff_layers": [99]}
    )
    assert r.status_code == 400 and "cutoff_layers" in r.json()["message"]
    r = http.post(
        "/rerank", json={"model": "tiny-encoder", "query": QUERY, "texts": ["a"], "cutoff_layers": [2]}
    )
    assert r.status_code == 422 and "cutoff_layers" in r.json()["error"]
    r = http.post("/v2/rerank", json={"model": "bge-reranker-v9", "query": QUERY, "documents": ["a"]})
    assert r.status_code == 404 and "tiny-encoder" in r.json()["message"]
    r = http.post("/rerank", json={"query": QUERY, "texts": ["a"]}, headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401


def test_over_long_input_without_truncation_is_refused_and_truncated_with_it(http):
    """tiny-encoder-short has 24 positions: max_length 20 fits it, the long passage does not."""
    long_passage = "panda bamboo " * 400
    common = {"model": "tiny-encoder-short", "max_length": 20}
    r = http.post(
        "/rerank", json={**common, "query": QUERY, "texts": ["hi", long_passage], "truncate": False}
    )
    assert (
        r.status_code == 422 and "passages[1]" in r.json()["error"] and "max_length 20" in r.json()["error"]
    ), r.text
    r = http.post("/rerank", json={**common, "query": QUERY, "texts": ["hi", long_passage]})
    assert r.status_code == 200, r.text
    r = http.post(
        "/v1/ranking", json={**common, "query": {"text": QUERY}, "passages": [{"text": long_passage}]}
    )
    assert r.status_code == 400 and "truncate is false" in r.json()["error"], r.text
    r = http.post(
        "/v1/ranking",
        json={**common, "query": {"text": QUERY}, "passages": [{"text": long_passage}], "truncate": "END"},
    )
    assert r.status_code == 200, r.text
    r = http.post("/v1/ranking", json={**common, "query": {"text": QUERY}, "passages": [{"text": "hi"}]})
    assert r.status_code == 200, r.text  # NONE: a pair that fits is scored


def raw_http(url: str, request: bytes) -> bytes:
    """One request over a plain socket (for headers no HTTP client sends)."""
    parsed = urllib.parse.urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=30) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def test_hostile_bodies_get_clean_4xx_and_everything_stays_up(http, api, expected):
    bodies = [
        b'{"query": "q", "texts": ["a",',
        b'{"query": "q", "texts": ' + b"[" * 100000 + b"]" * 100000 + b"}",
        b'{"query": "q\xff", "texts": ["a"]}',
        b'{"query": "q", "texts": [' + b'"x",' * 300000 + b'"x"]}',
        b'{"query": 1, "texts": {"a": 1}}',
        b'{"query": "q", "texts": ["a\\ud800"]}',
    ]
    for body in bodies:
        for path in ("/rerank", "/v2/rerank", "/v1/ranking"):
            r = http.post(path, content=body, headers={"content-type": "application/json"})
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
    huge = raw_http(
        api.url,
        b"POST /rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + KEY.encode() + b"\r\n"
        b"Content-Length: 99999999999999\r\n\r\n{",
    )
    assert huge.startswith(b"HTTP/1.1 413"), huge[:200]
    _, sigmoid = expected[("tiny-encoder", "{}")]
    r = http.post("/rerank", json={"query": QUERY, "texts": PASSAGES})
    assert {x["index"]: x["score"] for x in r.json()} == pytest.approx(dict(enumerate(sigmoid)), abs=TOL)
    assert api.process.poll() is None and httpx.get(api.url + "/health").status_code == 200
