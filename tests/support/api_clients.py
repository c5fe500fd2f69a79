"""Real third-party clients calling the rerank HTTP API, each reduced to [(index, score)] best
first: the official Cohere SDK (v2 and v1 clients), LiteLLM (its huggingface/ TEI and cohere/
providers) and Haystack's HuggingFaceTEIRanker."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

Ranked = list[tuple[int, float]]


def cohere_v2(
    base: str, key: str, model: str, query: str, docs: Sequence[str], top_n: int | None = None
) -> Ranked:
    import cohere

    client = cohere.ClientV2(api_key=key, base_url=base, timeout=60)
    kwargs = {"top_n": top_n} if top_n else {}
    response = client.rerank(model=model, query=query, documents=list(docs), **kwargs)
    return [(r.index, r.relevance_score) for r in response.results]


def cohere_v1(
    base: str, key: str, model: str, query: str, docs: Sequence[str], top_n: int | None = None
) -> Ranked:
    import cohere

    client = cohere.Client(api_key=key, base_url=base, timeout=60)
    kwargs = {"top_n": top_n} if top_n else {}
    response = client.rerank(model=model, query=query, documents=list(docs), return_documents=True, **kwargs)
    assert [r.document.text for r in response.results] == [docs[r.index] for r in response.results]
    return [(r.index, r.relevance_score) for r in response.results]


def litellm_tei(
    base: str, key: str, model: str, query: str, docs: Sequence[str], top_n: int | None = None
) -> Ranked:
    import litellm

    response = litellm.rerank(
        model=f"huggingface/{model}",
        query=query,
        documents=list(docs),
        api_base=base,
        api_key=key,
        top_n=top_n,
    )
    return [(r["index"], r["relevance_score"]) for r in response.results]


def litellm_cohere(
    base: str, key: str, model: str, query: str, docs: Sequence[str], top_n: int | None = None
) -> Ranked:
    import litellm

    response = litellm.rerank(
        model=f"cohere/{model}", query=query, documents=list(docs), api_base=base, api_key=key, top_n=top_n
    )
    return [(r["index"], r["relevance_score"]) for r in response.results]


def haystack_tei(
    base: str, key: str, model: str, query: str, docs: Sequence[str], top_n: int | None = None
) -> Ranked:
    from haystack import Document
    from haystack.utils import Secret
    from haystack_integrations.components.rankers.huggingface_api import HuggingFaceTEIRanker

    ranker = HuggingFaceTEIRanker(
        url=base, top_k=top_n or len(docs), token=Secret.from_token(key), timeout=60
    )
    documents = [Document(content=d, meta={"i": i}) for i, d in enumerate(docs)]
    ranked = ranker.run(query=query, documents=documents)["documents"]
    return [(d.meta["i"], d.score) for d in ranked]


CLIENTS: dict[str, Callable[..., Ranked]] = {
    "cohere-sdk-v2": cohere_v2,
    "cohere-sdk-v1": cohere_v1,
    "litellm-huggingface": litellm_tei,
    "litellm-cohere": litellm_cohere,
    "haystack-tei-ranker": haystack_tei,
}
