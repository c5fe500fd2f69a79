"""The rerank HTTP API's safety rules against an in-process fake backend: API keys, limits,
hostile bodies, backend failures mapped to 503/504/424 with each API's error body, metrics,
access logs without texts or keys, CORS, health and the OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import pytest

from reranker_api.backend import BackendFailure, BackendTimeout, BackendUnavailable, ModelInfo
from reranker_api.settings import KEYS_ENV, KEYS_FILE_ENV, parse_settings, read_api_keys
from tests.support.api_server import api_client
from tests.support.fake_api_backend import FakeBackend, fake_model

TEI_BODY = {"query": "what is a panda", "texts": ["a panda", "hi"]}
COHERE_BODY = {"model": "fake-reranker", "query": "what is a panda", "documents": ["a panda", "hi"]}
NIM_BODY = {"model": "fake-reranker", "query": {"text": "what is a panda"}, "passages": [{"text": "a panda"}]}
ROUTES = [
    ("/rerank", TEI_BODY, "tei"),
    ("/v2/rerank", COHERE_BODY, "cohere"),
    ("/v1/rerank", COHERE_BODY, "cohere"),
    ("/v1/ranking", NIM_BODY, "nim"),
]
SECRET = "sk-test-0123456789abcdef"


def error_text(style: str, body: dict) -> str:
    if style == "tei":
        assert set(body) == {"error", "error_type"}
        return body["error"]
    key = "message" if style == "cohere" else "error"
    assert set(body) == {key}
    return body[key]


# --- API keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, style", ROUTES)
def test_api_keys_guard_every_scoring_route(path, body, style):
    backend = FakeBackend()
    with api_client(backend, api_keys=(SECRET, "other-key")) as c:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": SECRET},
            {"Authorization": f"Basic {SECRET}"},
            {"Authorization": f"Bearer {SECRET}x"},
        ):
            r = c.post(path, json=body, headers=headers)
            assert r.status_code == 401, headers
            assert r.headers["www-authenticate"] == "Bearer"
            assert SECRET not in r.text
            error_text(style, r.json())
        assert not backend.calls
        for key in (SECRET, "other-key"):
            assert c.post(path, json=body, headers={"Authorization": f"Bearer {key}"}).status_code == 200
            assert c.post(path, json=body, headers={"authorization": f"bearer {key}"}).status_code == 200


def test_api_keys_leave_probes_and_metrics_open_but_guard_models():
    with api_client(FakeBackend(), api_keys=(SECRET,)) as c:
        for path in ("/health", "/v1/health/live", "/v1/health/ready", "/metrics"):
            assert c.get(path).status_code == 200, path
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200


def test_api_keys_from_file_and_env(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("# service keys\nkey-one\n\n  key-two  \n")
    assert read_api_keys(str(keys), env={}) == ("key-one", "key-two")
    assert read_api_keys(None, env={KEYS_FILE_ENV: str(keys), KEYS_ENV: "key-three, key-one"}) == (
        "key-one",
        "key-two",
        "key-three",
    )
    assert read_api_keys(None, env={}) == ()
    with pytest.raises(SystemExit, match="cannot read the API keys file"):
        read_api_keys(str(tmp_path / "missing"), env={})
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(SystemExit, match="holds no key"):
        read_api_keys(str(tmp_path / "empty"), env={})
    settings = parse_settings(["--api-keys-file", str(keys), "--max-documents", "5"], env={})
    assert settings.api_keys == ("key-one", "key-two") and settings.max_documents == 5


# --- limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body, style", ROUTES)
def test_documents_per_request_limit(path, body, style):
    backend = FakeBackend()
    with api_client(backend, max_documents=3) as c:
        many = json.loads(json.dumps(body))
        key = "texts" if style == "tei" else "documents" if style == "cohere" else "passages"
        many[key] = [many[key][0]] * 4
        r = c.post(path, json=many)
        assert r.status_code == (422 if style == "tei" else 400)
        assert "limit of 3" in error_text(style, r.json())
        many[key] = many[key][:3]
        assert c.post(path, json=many).status_code == 200
    assert len(backend.calls) == 1


@pytest.mark.parametrize("path, body, style", ROUTES)
def test_text_bytes_limit_names_the_field(path, body, style):
    with api_client(FakeBackend(), max_text_bytes=64) as c:
        big = json.loads(json.dumps(body))
        if style == "nim":
            big["passages"] = [{"text": "ok"}, {"text": "é" * 40}]
        else:
            big["texts" if style == "tei" else "documents"] = ["ok", "é" * 40]
        r = c.post(path, json=big)
        assert r.status_code == (422 if style == "tei" else 400)
        assert "[1]` has 80 bytes, over the limit of 64" in error_text(style, r.json())


@pytest.mark.parametrize("path, body, style", ROUTES)
def test_body_size_limit_declared_and_streamed(path, body, style):
    backend = FakeBackend()
    with api_client(backend, max_body_bytes=1000) as c:
        payload = json.dumps({**body, "padding": "x" * 2000}).encode()
        r = c.post(path, content=payload, headers={"content-type": "application/json"})
        assert r.status_code == 413 and "limit of 1000 bytes" in error_text(style, r.json())

        def chunks():
            for _ in range(20):
                yield b" " * 100

        r = c.post(path, content=chunks(), headers={"content-type": "application/json"})  # chunked, no length
        assert r.status_code == 413
    assert not backend.calls


@pytest.mark.parametrize("path, body, style", ROUTES)
def test_empty_query_and_texts(path, body, style):
    with api_client(FakeBackend()) as c:
        blank = json.loads(json.dumps(body))
        if style == "nim":
            blank["passages"] = [{"text": "fine"}, {"text": "  \n"}]
        else:
            blank["texts" if style == "tei" else "documents"] = ["fine", "  \n"]
        r = c.post(path, json=blank)
        assert r.status_code == (422 if style == "tei" else 400) and "[1]` is empty" in error_text(
            style, r.json()
        )
        blank = json.loads(json.dumps(body))
        if style == "nim":
            blank["query"] = {"text": ""}
        else:
            blank["query"] = ""
        r = c.post(path, json=blank)
        assert r.status_code in (400, 422) and "is empty" in error_text(style, r.json())


def test_concurrency_limit_answers_429(backend_slow=None):
    backend = FakeBackend(delay_s=0.5)
    import httpx
    from fastapi.testclient import TestClient  # noqa: F401  (the app is driven directly below)

    from reranker_api import Settings, create_app

    app = create_app(Settings(max_concurrent_requests=2), backend)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            replies = await asyncio.gather(*(client.post("/rerank", json=TEI_BODY) for _ in range(5)))
        return sorted(r.status_code for r in replies), [r.json() for r in replies if r.status_code == 429]

    statuses, overloaded = asyncio.run(main())
    assert statuses == [200, 200, 429, 429, 429]
    assert all(body["error_type"] == "Overloaded" for body in overloaded)


# --- hostile bodies -------------------------------------------------------------------------------

RAW_HOSTILE = [
    ("malformed JSON", b'{"query": "q", "texts": ["a",', "malformed JSON"),
    ("empty body", b"", "empty"),
    ("non-UTF-8", b'{"query": "q\xff\xfe", "texts": ["a"]}', "UTF-8"),
    ("deep nesting", b'{"query": "q", "texts": ' + b"[" * 50000 + b"]" * 50000 + b"}", "nested too deeply"),
    (
        "huge integer",
        b'{"query": "q", "texts": ["a"], "max_length": 1' + b"0" * 5000 + b"}",
        "malformed JSON",
    ),
]


@pytest.mark.parametrize("name, payload, needle", RAW_HOSTILE, ids=[h[0] for h in RAW_HOSTILE])
@pytest.mark.parametrize("path, body, style", ROUTES, ids=[r[0] for r in ROUTES])
def test_unparseable_bodies_get_400(path, body, style, name, payload, needle):
    backend = FakeBackend()
    with api_client(backend) as c:
        r = c.post(path, content=payload, headers={"content-type": "application/json"})
        assert r.status_code == 400, r.text
        assert needle in error_text(style, r.json())
        assert c.post(path, json=body).status_code == 200  # still serving
    assert len(backend.calls) == 1


def with_documents(style: str, body: dict, documents: list, query=None) -> bytes:
    """`body` with its documents (and query) replaced, in the route's shape, as JSON bytes."""
    out = json.loads(json.dumps(body))
    if style == "nim":
        out["passages"] = [{"text": d} for d in documents]
        if query is not None:
            out["query"] = {"text": query}
    else:
        out["texts" if style == "tei" else "documents"] = documents
        if query is not None:
            out["query"] = query
    return json.dumps(out).encode()


FIELD_HOSTILE = [
    (
        "lone surrogate",
        lambda s, b: with_documents(s, b, ["ok"]).replace(b'"ok"', b'"a\\ud800b"'),
        "lone surrogate",
    ),
    ("number as text", lambda s, b: with_documents(s, b, [5]), "valid string"),
    ("object as text", lambda s, b: with_documents(s, b, [{"deep": [1, 2]}]), "valid string"),
    ("null query", lambda s, b: with_documents(s, b, ["a"]).replace(b'"what is a panda"', b"null"), "query"),
    ("not an object", lambda s, b: b'["q", "a"]', "JSON object"),
    ("missing fields", lambda s, b: b"{}", "Field required"),
    ("huge array", lambda s, b: with_documents(s, b, ["x"] * 200_000), "limit of 1000"),
    ("huge float", lambda s, b: with_documents(s, b, ["a"])[:-1] + b', "max_length": 1e400}', "max_length"),
]


@pytest.mark.parametrize("name, make, needle", FIELD_HOSTILE, ids=[h[0] for h in FIELD_HOSTILE])
@pytest.mark.parametrize("path, body, style", ROUTES, ids=[r[0] for r in ROUTES])
def test_hostile_fields_get_a_clean_4xx_naming_the_problem(path, body, style, name, make, needle):
    backend = FakeBackend()
    with api_client(backend) as c:
        r = c.post(path, content=make(style, body), headers={"content-type": "application/json"})
        assert r.status_code == (422 if style == "tei" else 400), r.text
        text = error_text(style, r.json())
        if not (style == "cohere" and name == "object as text"):  # Cohere documents may be objects
            assert needle in text, text
        assert c.post(path, json=body).status_code == 200
    assert len(backend.calls) == 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_content_type_is_415(content_type):
    with api_client(FakeBackend()) as c:
        headers = {"content-type": content_type} if content_type else {}
        r = c.post("/rerank", content=json.dumps(TEI_BODY).encode(), headers=headers)
        assert r.status_code == 415 and r.json()["error_type"] == "Validation"
        r = c.post(
            "/v2/rerank",
            content=json.dumps(COHERE_BODY).encode(),
            headers={"content-type": "application/json; charset=utf-8"},
        )
        assert r.status_code == 200


def test_invalid_content_length_is_refused():
    from reranker_api.bodies import read_body
    from reranker_api.errors import ApiError

    class Fake:
        headers = {"content-length": "-1"}

    with pytest.raises(ApiError, match="invalid Content-Length"):
        asyncio.run(read_body(Fake(), 100))
    Fake.headers = {"content-length": "99999999999999999999"}
    with pytest.raises(ApiError, match="over the limit"):
        asyncio.run(read_body(Fake(), 100))


# --- backend failures -----------------------------------------------------------------------------

FAILURES = [
    (
        BackendUnavailable("Triton at x is unreachable"),
        {"tei": (503, "Unhealthy"), "cohere": 503, "nim": 503},
        True,
    ),
    (
        BackendTimeout("model did not answer in time"),
        {"tei": (504, "Backend"), "cohere": 504, "nim": 504},
        False,
    ),
    (BackendFailure("model failed: boom"), {"tei": (424, "Backend"), "cohere": 500, "nim": 500}, False),
]


@pytest.mark.parametrize("error, statuses, retry_after", FAILURES, ids=["unavailable", "timeout", "failure"])
@pytest.mark.parametrize("path, body, style", ROUTES, ids=[r[0] for r in ROUTES])
def test_backend_failures_map_to_status_and_body(path, body, style, error, statuses, retry_after):
    with api_client(FakeBackend(fail_with=error), retry_after_s=7) as c:
        r = c.post(path, json=body)
    expected = statuses[style]
    if style == "tei":
        assert (r.status_code, r.json()["error_type"]) == expected
    else:
        assert r.status_code == expected
    assert error.message in error_text(style, r.json())
    assert r.headers.get("retry-after") == ("7" if retry_after else None)


def test_a_hanging_backend_gets_504_after_the_request_timeout(monkeypatch):
    import reranker_api.rerank_service as service

    monkeypatch.setattr(service, "TIMEOUT_MARGIN_S", 0.0)
    backend = FakeBackend(delay_s=30)
    with api_client(backend, request_timeout_s=0.2) as c:
        r = c.post("/v1/ranking", json=NIM_BODY)
    assert r.status_code == 504 and "did not answer within 0.2 s" in r.json()["error"]
    assert backend.calls[0].timeout_s == 0.2


def test_non_finite_scores_are_a_backend_error():
    with api_client(FakeBackend(fixed_scores=[float("nan"), 1.0])) as c:
        r = c.post("/rerank", json=TEI_BODY)
        assert (r.status_code, r.json()["error_type"]) == (424, "Backend") and "non-finite" in r.json()[
            "error"
        ]
        assert c.post("/v2/rerank", json=COHERE_BODY).status_code == 500


def test_no_served_model_is_503():
    with api_client(FakeBackend(models_served=[])) as c:
        r = c.post("/rerank", json=TEI_BODY)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert c.get("/health").status_code == 503


# --- health, models, metrics, logs, CORS, docs ----------------------------------------------------


def test_health_follows_the_backend():
    backend = FakeBackend()
    with api_client(backend) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/v1/health/ready").json()["status"] == "ready"
        backend.ready = False
        r = c.get("/health")
        assert (
            r.status_code == 503 and r.json()["error_type"] == "Unhealthy" and r.headers["retry-after"] == "1"
        )
        assert c.get("/v1/health/ready").status_code == 503
        assert c.get("/v1/health/live").status_code == 200
        backend.models_served = [ModelInfo("other")]
        backend.ready = True
    with api_client(backend, default_model="missing") as c:
        assert c.get("/health").status_code == 503


def test_models_list_shows_hub_ids_never_a_server_path():
    backend = FakeBackend(
        models_served=[
            fake_model("a", source="BAAI/bge-reranker-base"),
            fake_model("b", "minicpm_layerwise", source="/srv/checkpoints/bge-reranker-v2-minicpm-layerwise"),
            ModelInfo("c", aliases=("c-text",)),  # its manifest could not be read
        ]
    )
    with api_client(backend) as c:
        body = c.get("/v1/models").json()
    assert body["object"] == "list"
    assert [(m["id"], m["object"], m["family"], m["aliases"]) for m in body["data"]] == [
        ("a", "model", "encoder", ["a-text", "BAAI/bge-reranker-base"]),
        ("b", "model", "minicpm_layerwise", ["b-text"]),
        ("c", "model", None, ["c-text"]),
    ]
    assert "/srv" not in json.dumps(body)


def metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric line {line_start!r} in:\n{text}")


def test_metrics_count_requests_pairs_errors_and_latency():
    with api_client(FakeBackend()) as c:
        c.post("/rerank", json=TEI_BODY)
        c.post("/v2/rerank", json=COHERE_BODY)
        c.post("/v1/ranking", json=NIM_BODY)
        c.post("/rerank", json={"query": "q", "texts": []})
        c.post("/rerank", content=b"{", headers={"content-type": "application/json"})
        c.get("/nowhere/at/all")
        text = c.get("/metrics").text
    assert metric(text, 'reranker_api_requests_total{route="/rerank",status="200"}') == 1
    assert metric(text, 'reranker_api_requests_total{route="/rerank",status="400"}') == 2
    assert metric(text, 'reranker_api_requests_total{route="other",status="404"}') == 1
    assert metric(text, 'reranker_api_pairs_total{model="fake-reranker"}') == 5
    assert metric(text, 'reranker_api_errors_total{type="empty"}') == 1
    assert metric(text, 'reranker_api_errors_total{type="malformed_json"}') == 1
    assert metric(text, 'reranker_api_request_duration_seconds_count{route="/v1/ranking"}') == 1
    assert metric(text, 'reranker_api_backend_duration_seconds_count{model="fake-reranker"}') == 3
    assert metric(text, "reranker_api_in_flight_requests") == 0


def test_access_log_has_request_facts_but_no_texts_or_keys(caplog):
    secret_text = "my-confidential-passage-zebra"
    with caplog.at_level(logging.INFO, logger="reranker_api.access"):
        with api_client(FakeBackend(), api_keys=(SECRET,)) as c:
            ok = c.post(
                "/v2/rerank",
                json={**COHERE_BODY, "documents": [secret_text, "b"]},
                headers={"Authorization": f"Bearer {SECRET}", "X-Request-Id": "req-42"},
            )
            c.post(
                "/rerank",
                json={"query": secret_text, "texts": [secret_text]},
                headers={"Authorization": "Bearer wrong-key"},
            )
    assert ok.headers["x-request-id"] == "req-42" and ok.json()["id"] == "req-42"
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "reranker_api.access"]
    assert [(x["route"], x["status"], x["model"], x["documents"], x["error"]) for x in lines] == [
        ("/v2/rerank", 200, "fake-reranker", 2, None),
        ("/rerank", 401, None, None, "unauthorized"),
    ]
    assert lines[0]["request_id"] == "req-42" and lines[0]["duration_ms"] >= 0
    everything = caplog.text
    assert secret_text not in everything and SECRET not in everything and "wrong-key" not in everything


def test_cors_is_off_unless_configured():
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with api_client(FakeBackend()) as c:
        r = c.post("/rerank", json=TEI_BODY, headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in c.options("/rerank", headers=preflight).headers
    with api_client(FakeBackend(), cors_origins=("https://app.example",)) as c:
        r = c.post("/rerank", json=TEI_BODY, headers={"Origin": "https://app.example"})
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        r = c.post("/rerank", json=TEI_BODY, headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


def test_openapi_documents_every_shape():
    with api_client(FakeBackend()) as c:
        doc = c.get("/openapi.json").json()
        assert c.get("/docs").status_code == 200
    for path, model in (
        ("/rerank", "TeiRerankRequest"),
        ("/v2/rerank", "CohereV2RerankRequest"),
        ("/v1/rerank", "CohereV1RerankRequest"),
        ("/v1/ranking", "NimRankingRequest"),
    ):
        ref = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/" + model)
        props = doc["components"]["schemas"][model]["properties"]
        assert {"prompt", "cutoff_layers", "compress_ratio", "compress_layers"} <= set(props)
    assert {"query", "texts", "raw_scores", "return_text", "truncate", "truncation_direction"} <= set(
        doc["components"]["schemas"]["TeiRerankRequest"]["properties"]
    )
    assert "/health" in doc["paths"] and "/metrics" in doc["paths"] and "/v1/models" in doc["paths"]


def test_settings_refuse_bad_limits():
    with pytest.raises(SystemExit, match="--max-documents must be at least 1"):
        parse_settings(["--max-documents", "0"], env={})
    with pytest.raises(SystemExit, match="--request-timeout must be positive"):
        parse_settings(["--request-timeout", "0"], env={})


def test_health_probes_a_model_that_failed_until_it_answers_again():
    """Triton may report a model READY whose backend process is dead: after a request found it
    unavailable, /health sends a real one-pair request and stays 503 until one succeeds."""
    backend = FakeBackend()
    with api_client(backend) as c:
        backend.fail_with = BackendUnavailable("its backend process is not running")
        assert c.post("/rerank", json=TEI_BODY).status_code == 503
        calls = len(backend.calls)
        r = c.get("/health")
        assert r.status_code == 503 and "backend process" in r.json()["error"]
        assert len(backend.calls) == calls + 1 and backend.calls[-1].passages == ["ok"]
        backend.fail_with = None
        assert c.get("/health").status_code == 200
        assert c.get("/health").status_code == 200
        assert len(backend.calls) == calls + 2  # no probe once it answered


def test_docs_page_loads_every_asset_from_this_server():
    """An air-gapped cluster reaches no CDN: every script, style and icon of /docs is served here."""
    with api_client(FakeBackend(), root_path="/reranker") as c:
        page = c.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
        assert len(urls) >= 4 and not [u for u in urls if "//" in u], urls
        for url in urls:
            assert url.startswith("/reranker/"), url
            r = c.get(url.removeprefix("/reranker"))
            assert r.status_code == 200 and len(r.content) > 100, url
        assert "swagger-ui-bundle.js" in " ".join(urls)
        assert "openapi" in c.get("/docs/assets/swagger-ui-bundle.js").text.lower()
        assert c.get("/redoc").status_code == 404  # FastAPI's redoc page loads from a CDN: off
        for other in ("index.css", "..%2F__init__.py", "swagger-editor-bundle.js"):
            assert c.get(f"/docs/assets/{other}").status_code == 404  # only the page's own assets
