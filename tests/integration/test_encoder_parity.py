"""Encoder rerankers through the real embedded Triton server and the client, against FlagEmbedding."""

from __future__ import annotations

import pytest

from tests.support.oracle import run_oracle
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs

PAIRS = TUTORIAL_PAIRS + MULTILINGUAL_PAIRS
MANY = many_pairs(150)
# (model, pairs name, compute_score kwargs)
CASES = [
    ("tiny-encoder", "pairs", {}),
    ("tiny-encoder", "pairs", {"normalize": True}),
    ("tiny-encoder", "pairs", {"max_length": 16}),
    ("tiny-encoder", "pairs", {"max_length": 20, "query_max_length": 5}),
    ("tiny-encoder", "single", {}),
    ("tiny-encoder", "many", {"batch_size": 16}),
    ("tiny-encoder-short", "pairs", {"max_length": 24}),
    ("tiny-encoder-short", "pairs", {"max_length": 12, "query_max_length": 4, "normalize": True}),
]
INPUTS = {"pairs": PAIRS, "single": ["what is panda?", "The giant panda 🐼 is a bear."], "many": MANY}


@pytest.fixture(scope="module")
def expected(test_repository):
    jobs = [
        {
            "kind": "encoder",
            "model": str(test_repository.checkpoint(model)),
            "pairs": INPUTS[name],
            "score": kwargs,
        }
        for model, name, kwargs in CASES
    ]
    return run_oracle(jobs)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize(
    "case",
    range(len(CASES)),
    ids=[f"{m}-{n}-{'-'.join(f'{k}{v}' for k, v in kw.items()) or 'default'}" for m, n, kw in CASES],
)
def test_scores_equal_flagembedding(make_client, expected, protocol, case):
    model, name, kwargs = CASES[case]
    client = make_client(model, protocol)
    got = client.compute_score(INPUTS[name], **kwargs)
    want = expected[case]["scores"]
    assert len(got) == len(want)
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-4


def test_scores_differ_between_pairs(make_client, expected):
    """Guards the parity test against a degenerate model that scores everything alike."""
    scores = expected[0]["scores"]
    assert max(scores) - min(scores) > 1e-2


def test_rerank_sorts_by_score_and_cuts_top_n(make_client, expected):
    client = make_client("tiny-encoder")
    query = TUTORIAL_PAIRS[0][0]
    passages = [p for _, p in PAIRS]
    results = client.rerank(query, passages, top_n=3)
    all_scores = client.compute_score([[query, p] for p in passages], normalize=True)
    assert [r.index for r in results] == sorted(range(len(passages)), key=lambda i: -all_scores[i])[:3]
    assert all(abs(r.score - all_scores[r.index]) < 1e-9 and r.passage == passages[r.index] for r in results)


def test_fp16_export_agrees_with_fp32_and_ranks_the_same(make_client):
    fp32 = make_client("tiny-encoder").compute_score(MANY[:60])
    fp16 = make_client("tiny-encoder-fp16").compute_score(MANY[:60])
    diff = max(abs(a - b) for a, b in zip(fp32, fp16))
    assert diff < 1e-2, f"fp16 drift {diff}"
    # Same ranking: no two pairs whose fp32 scores are clearly apart (more than twice the drift)
    # swap order in fp16. Near-ties may swap: their order is within float noise either way.
    separated = [(i, j) for i in range(60) for j in range(60) if fp32[i] - fp32[j] > 2 * diff]
    assert len(separated) > 1000  # the check covers most of the 1770 pairs of pairs
    assert all(fp16[i] > fp16[j] for i, j in separated)


def test_client_learns_model_from_server(make_client, test_repository):
    client = make_client("tiny-encoder-short", "http")
    assert client.manifest.family == "encoder"
    assert client.manifest.max_positions == 24
    assert client.manifest.source == str(test_repository.checkpoint("tiny-encoder-short"))


@pytest.mark.parametrize(
    "ids, mask, message",
    [
        ([[0, 5, 2]], [[1, 1]], "does not match"),
        ([[0, 5, 99999, 2]], [[1, 1, 1, 1]], "out of range"),
        ([[0, 5, 2]], [[1, 2, 1]], "only 0 and 1"),
        ([[0, 5, 2, 1]], [[1, 0, 1, 1]], "contiguous"),
        ([[0] * 30], [[1] * 30], "exceeds the model's maximum of 24"),
    ],
)
def test_malformed_raw_requests_get_clear_errors_and_server_keeps_serving(
    triton_server, make_client, ids, mask, message
):
    import numpy as np
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    raw = grpcclient.InferenceServerClient(triton_server.grpc_url)
    inputs = []
    for name, value in (("input_ids", ids), ("attention_mask", mask)):
        array = np.array(value, dtype=np.int64)
        tensor = grpcclient.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    with pytest.raises(InferenceServerException, match=message):
        raw.infer("tiny-encoder-short", inputs)
    raw.close()
    good = make_client("tiny-encoder-short").compute_score(TUTORIAL_PAIRS, max_length=24)
    assert len(good) == 4
