"""LLM rerankers (gemma, minicpm layerwise, gemma2 lightweight) through the real embedded Triton
server and the client, against FlagEmbedding's FlagLLMReranker / LayerWise / LightWeight."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from reranker_client import InferenceError, InvalidInputError
from tests.support.oracle import run_oracle
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs

PAIRS = TUTORIAL_PAIRS + MULTILINGUAL_PAIRS
MIXED = many_pairs(24) + [["q", "a"], ["what is panda?", "x"]]  # very different lengths, tiny passages
PROMPT = "Is passage B relevant to query A? Answer Yes or No."
KIND = {"tiny-gemma": "llm", "tiny-layerwise": "layerwise", "tiny-lightweight": "lightweight"}

# (model, pairs name, compute_score kwargs) -- tiny-layerwise: 6 layers, cutoffs 2..6;
# tiny-lightweight: 8 layers, cutoffs 2, 4, 6, 8.
CASES = [
    ("tiny-gemma", "pairs", {}),
    ("tiny-gemma", "pairs", {"normalize": True}),
    ("tiny-gemma", "pairs", {"prompt": PROMPT}),
    ("tiny-gemma", "pairs", {"max_length": 12, "query_max_length": 5}),
    ("tiny-gemma", "mixed", {}),
    ("tiny-layerwise", "pairs", {}),
    ("tiny-layerwise", "pairs", {"cutoff_layers": [2]}),
    ("tiny-layerwise", "pairs", {"cutoff_layers": [4], "normalize": True}),
    ("tiny-layerwise", "pairs", {"cutoff_layers": [3, 6]}),
    (
        "tiny-layerwise",
        "pairs",
        {"cutoff_layers": [5], "prompt": PROMPT, "max_length": 14, "query_max_length": 6},
    ),
    ("tiny-layerwise", "mixed", {"cutoff_layers": [4]}),
    ("tiny-lightweight", "pairs", {}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [4]}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [2, 6]}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [6], "compress_ratio": 1, "compress_layers": [2]}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [6], "compress_ratio": 2, "compress_layers": [2]}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [6], "compress_ratio": 2, "compress_layers": [6]}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [4], "compress_ratio": 4, "compress_layers": [2, 6]}),
    (
        "tiny-lightweight",
        "pairs",
        {"cutoff_layers": [8], "compress_ratio": 2, "compress_layers": [2, 4], "normalize": True},
    ),
    ("tiny-lightweight", "mixed", {"cutoff_layers": [6], "compress_ratio": 4, "compress_layers": [3]}),
    (
        "tiny-lightweight",
        "pairs",
        {"cutoff_layers": [4], "prompt": PROMPT, "max_length": 16, "query_max_length": 6},
    ),
]
INPUTS = {"pairs": PAIRS, "mixed": MIXED}


def case_id(case):
    model, name, kwargs = case
    return f"{model}-{name}-" + (
        "-".join(f"{k}{v}" for k, v in kwargs.items() if k != "prompt")
        + ("-prompt" if "prompt" in kwargs else "")
        or "default"
    )


@pytest.fixture(scope="module")
def expected(test_repository):
    jobs = [
        {
            "kind": KIND[model],
            "model": str(test_repository.checkpoint(model)),
            "pairs": INPUTS[name],
            "score": kwargs,
        }
        for model, name, kwargs in CASES
    ]
    return run_oracle(jobs)


def max_diff(got, want) -> float:
    return float(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64)).max())


@pytest.mark.parametrize("case", range(len(CASES)), ids=[case_id(c) for c in CASES])
def test_scores_equal_flagembedding(make_client, expected, case):
    model, name, kwargs = CASES[case]
    want = expected[case]
    assert "error" not in want, want
    got = make_client(model).compute_score(INPUTS[name], **kwargs)
    assert np.shape(got) == np.shape(want["scores"])
    assert max_diff(got, want["scores"]) < 1e-4


def test_http_gives_the_same_scores(make_client, expected):
    case = next(
        i for i, c in enumerate(CASES) if c[0] == "tiny-lightweight" and c[2].get("compress_ratio") == 4
    )
    model, name, kwargs = CASES[case]
    assert (
        max_diff(make_client(model, "http").compute_score(INPUTS[name], **kwargs), expected[case]["scores"])
        < 1e-4
    )


def test_scores_vary_between_pairs_and_cutoffs(expected):
    """Guards the parity tests against degenerate tiny models."""
    for case, (_model, _, _kwargs) in enumerate(CASES):
        scores = np.asarray(expected[case]["scores"])
        assert scores.max() - scores.min() > 1e-3, CASES[case]
    multi = np.asarray(
        expected[CASES.index(("tiny-layerwise", "pairs", {"cutoff_layers": [3, 6]}))]["scores"]
    )
    assert np.abs(multi[0] - multi[1]).max() > 1e-3


def test_concurrent_requests_with_different_parameters(make_client, expected):
    """Requests with different cutoffs/compression share dynamic batches and are all answered right."""
    chosen = [i for i, c in enumerate(CASES) if c[0] == "tiny-lightweight"] * 2
    clients = {i: make_client("tiny-lightweight") for i in set(chosen)}

    def run(i):
        _, name, kwargs = CASES[i]
        return i, clients[i].compute_score(INPUTS[name], batch_size=3, **kwargs)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, got in pool.map(run, chosen):
            assert max_diff(got, expected[i]["scores"]) < 1e-4, CASES[i]


def test_rerank_uses_llm_parameters(make_client):
    client = make_client("tiny-layerwise")
    passages = [p for _, p in PAIRS]
    ranked = client.rerank(PAIRS[0][0], passages, top_n=3, cutoff_layers=[4])
    scores = client.compute_score([[PAIRS[0][0], p] for p in passages], normalize=True, cutoff_layers=[4])
    assert [r.index for r in ranked] == list(np.argsort(-np.asarray(scores), kind="stable")[:3])


@pytest.mark.parametrize(
    "model, kwargs, message",
    [
        ("tiny-layerwise", {"cutoff_layers": [1]}, "cutoff"),
        ("tiny-layerwise", {"cutoff_layers": [7]}, "cutoff"),
        ("tiny-lightweight", {"cutoff_layers": [3]}, "cutoff"),
        ("tiny-lightweight", {"compress_ratio": 3, "compress_layers": [2]}, "compress_ratio"),
        ("tiny-lightweight", {"compress_ratio": 2, "compress_layers": [-1]}, "compress layer.*out of range"),
    ],
)
def test_bad_parameters_get_clear_errors_and_others_still_served(
    make_client, expected, model, kwargs, message
):
    client = make_client(model)
    with pytest.raises((InferenceError, InvalidInputError), match=message):
        client.compute_score(PAIRS, **kwargs)
    good = CASES.index(("tiny-lightweight", "pairs", {"cutoff_layers": [4]}))
    assert (
        max_diff(
            make_client("tiny-lightweight").compute_score(PAIRS, cutoff_layers=[4]), expected[good]["scores"]
        )
        < 1e-4
    )


def test_family_arguments_are_checked_by_the_client(make_client):
    with pytest.raises(InvalidInputError, match="unknown option"):
        make_client("tiny-gemma").compute_score(PAIRS, cutoff_layers=[2])
    with pytest.raises(InvalidInputError, match="cutoff_layers"):
        make_client("tiny-layerwise").compute_score(PAIRS, cutoff_layers="4")
