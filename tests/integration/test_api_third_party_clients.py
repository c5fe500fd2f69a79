"""Real third-party clients (Cohere SDK, LiteLLM, Haystack's TEI ranker) against the rerank HTTP
API served by uvicorn over loopback, with the in-process fake backend behind it. The same clients
run against the real Triton text models in tests/integration/test_api_service.py."""

from __future__ import annotations

import pytest

from tests.support.api_clients import CLIENTS
from tests.support.api_server import threaded_api
from tests.support.fake_api_backend import FakeBackend, fake_logit, sigmoid

KEY = "test-key-123"
QUERY = "what is a panda"
DOCS = ["hi there", "the giant panda is a bear", "a panda", "what is a panda bear", "bamboo"]


@pytest.fixture(scope="module")
def served():
    backend = FakeBackend()
    with threaded_api(backend, api_keys=(KEY,)) as base:
        yield base, backend


@pytest.mark.parametrize("name", sorted(CLIENTS))
def test_client_gets_every_document_best_first_with_relevance_scores(served, name):
    base, backend = served
    ranked = CLIENTS[name](base, KEY, "fake-reranker", QUERY, DOCS)
    expected = sorted(((i, sigmoid(fake_logit(QUERY, d))) for i, d in enumerate(DOCS)), key=lambda x: -x[1])
    assert [i for i, _ in ranked] == [i for i, _ in expected]
    assert [s for _, s in ranked] == pytest.approx([s for _, s in expected], abs=1e-6)
    assert backend.calls[-1].passages == DOCS and backend.calls[-1].options.normalize


@pytest.mark.parametrize("name", ["cohere-sdk-v2", "cohere-sdk-v1", "litellm-cohere", "haystack-tei-ranker"])
def test_client_top_n(served, name):
    base, _ = served
    ranked = CLIENTS[name](base, KEY, "fake-reranker", QUERY, DOCS, top_n=2)
    assert len(ranked) == 2 and ranked[0][1] >= ranked[1][1]


def test_cohere_sdk_errors_are_typed(served):
    import cohere
    from cohere.core.api_error import ApiError

    base, _ = served
    with pytest.raises(ApiError) as info:
        cohere.ClientV2(api_key="wrong", base_url=base).rerank(
            model="fake-reranker", query="q", documents=["a"]
        )
    assert info.value.status_code == 401 and "invalid API key" in info.value.body["message"]
    with pytest.raises(ApiError) as info:
        cohere.ClientV2(api_key=KEY, base_url=base).rerank(model="rerank-v3.5", query="q", documents=["a"])
    assert info.value.status_code == 404 and "rerank-v3.5" in info.value.body["message"]
    with pytest.raises(ApiError) as info:
        cohere.ClientV2(api_key=KEY, base_url=base).rerank(model="fake-reranker", query="q", documents=[])
    assert info.value.status_code == 400


def test_cohere_sdk_retries_503_with_retry_after_then_raises():
    import cohere
    from cohere.core.api_error import ApiError

    from reranker_api.backend import BackendUnavailable

    backend = FakeBackend(fail_with=BackendUnavailable("Triton at x is unreachable"))
    with threaded_api(backend, retry_after_s=0) as base:
        with pytest.raises(ApiError) as info:
            cohere.ClientV2(api_key=KEY, base_url=base).rerank(
                model="fake-reranker", query="q", documents=["a"]
            )
    assert info.value.status_code == 503 and "unreachable" in info.value.body["message"]
    assert len(backend.calls) == 3  # the SDK's two retries on 503


def test_haystack_ranker_reports_a_server_error():
    from reranker_api.backend import BackendFailure

    base_backend = FakeBackend(fail_with=BackendFailure("model failed: boom"))
    with threaded_api(base_backend) as base:
        with pytest.raises(Exception, match="424|boom"):
            CLIENTS["haystack-tei-ranker"](base, KEY, "fake-reranker", QUERY, DOCS)
