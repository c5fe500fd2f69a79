"""The text-facing models (`<name>-text`) through the real embedded Triton server, called the way
a caller in any language calls them (raw tritonclient BYTES tensors, curl-style HTTP JSON), against
FlagEmbedding 1.4.2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from reranker_core.encoding import passage_budgets
from reranker_core.manifest import ModelManifest
from reranker_core.options import parse_options
from reranker_core.windows import window_texts
from tests.support.oracle import run_oracle
from tests.support.pairs import MULTILINGUAL_PAIRS, TUTORIAL_PAIRS, many_pairs
from tests.support.text_requests import TextModelError, grpc_text_infer, http_text_infer

PAIRS = TUTORIAL_PAIRS + MULTILINGUAL_PAIRS
MANY = many_pairs(70)
RERANK_QUERY = "what is panda?"
RERANK = [[RERANK_QUERY, p] for p in dict.fromkeys(p for _, p in PAIRS)]  # distinct passages: no ties
PROMPT = "Is passage B relevant to query A? Answer Yes or No."
KIND = {
    "tiny-encoder": "encoder",
    "tiny-encoder-short": "encoder",
    "tiny-gemma": "llm",
    "tiny-layerwise": "layerwise",
    "tiny-lightweight": "lightweight",
}
INPUTS = {"pairs": PAIRS, "rerank": RERANK, "many": MANY, "single": [PAIRS[5]]}
# (model, inputs, FlagEmbedding compute_score kwargs = the request parameters)
CASES = [
    ("tiny-encoder", "pairs", {}),
    ("tiny-encoder", "rerank", {"normalize": True}),
    ("tiny-encoder", "many", {"max_length": 20, "query_max_length": 5}),
    ("tiny-encoder", "single", {}),
    ("tiny-encoder-short", "pairs", {"max_length": 12, "query_max_length": 4}),
    ("tiny-gemma", "pairs", {"prompt": PROMPT}),
    ("tiny-gemma", "rerank", {"max_length": 12, "query_max_length": 5, "normalize": True}),
    ("tiny-layerwise", "pairs", {"cutoff_layers": [3, 6]}),
    ("tiny-layerwise", "rerank", {"cutoff_layers": [4], "max_length": 14}),
    ("tiny-lightweight", "pairs", {"cutoff_layers": [6], "compress_ratio": 2, "compress_layers": [2]}),
    ("tiny-lightweight", "many", {"cutoff_layers": [4], "compress_ratio": 4, "compress_layers": [2, 6]}),
    ("tiny-lightweight", "rerank", {"prompt": PROMPT, "cutoff_layers": [8], "normalize": True}),
]


def case_id(case):
    model, name, kwargs = case
    return f"{model}-{name}-" + ("-".join(f"{k}{v}" for k, v in kwargs.items() if k != "prompt") or "default")


@pytest.fixture(scope="module")
def expected(test_repository):
    jobs = [
        {"kind": KIND[m], "model": str(test_repository.checkpoint(m)), "pairs": INPUTS[n], "score": kw}
        for m, n, kw in CASES
    ]
    return run_oracle(jobs)


def _as_rows(scores) -> np.ndarray:
    """FlagEmbedding's return (list, or list of lists per cutoff) as [k, n]."""
    array = np.asarray(scores, dtype=np.float64)
    return array.reshape(1, -1) if array.ndim == 1 else array


def _wire(kwargs: dict) -> dict:
    """Request parameters as a JSON caller writes them (lists as JSON text)."""
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def _call(triton_server, protocol, model, name, parameters):
    pairs = INPUTS[name]
    infer, url = (
        (grpc_text_infer, triton_server.grpc_url)
        if protocol == "grpc"
        else (http_text_infer, triton_server.http_url)
    )
    passages = [p for _, p in pairs]
    if name == "rerank":
        return infer(url, f"{model}-text", passages, query=RERANK_QUERY, parameters=parameters)
    return infer(url, f"{model}-text", passages, queries=[q for q, _ in pairs], parameters=parameters)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
@pytest.mark.parametrize("case", range(len(CASES)), ids=[case_id(c) for c in CASES])
def test_text_model_scores_equal_flagembedding(triton_server, expected, protocol, case):
    model, name, kwargs = CASES[case]
    scores, indices = _call(triton_server, protocol, model, name, _wire(kwargs))
    want = _as_rows(expected[case]["scores"])
    assert scores.shape == want.shape
    assert np.abs(scores - want).max() < 1e-4
    if name == "rerank":
        assert indices.tolist() == sorted(range(len(RERANK)), key=lambda i: (-want[-1][i], i))
    else:
        assert indices.size == 0


def test_oracle_scores_are_not_degenerate(expected):
    scores = np.asarray(expected[0]["scores"])
    assert scores.max() - scores.min() > 1e-2


@pytest.mark.parametrize(
    "model, kwargs",
    [
        ("tiny-encoder", {}),
        ("tiny-layerwise", {"cutoff_layers": [2, 5]}),
        ("tiny-lightweight", {"compress_ratio": 2, "compress_layers": [4]}),
    ],
)
def test_text_path_equals_token_path(triton_server, make_client, model, kwargs):
    """Same pairs through the SDK (client-side tokenization, token model) and the text model."""
    via_tokens = _as_rows(make_client(model).compute_score(MANY, **kwargs))
    via_text, _ = grpc_text_infer(
        triton_server.grpc_url,
        f"{model}-text",
        [p for _, p in MANY],
        queries=[q for q, _ in MANY],
        parameters=_wire(kwargs),
    )
    # Both run the same graph on the same token ids; only the batch composition may differ.
    assert np.abs(via_text - via_tokens).max() < 1e-5


def test_top_n_and_string_parameters(triton_server):
    passages = [p for _, p in RERANK]
    full, order = grpc_text_infer(triton_server.grpc_url, "tiny-encoder-text", passages, query=RERANK_QUERY)
    top, top_order = grpc_text_infer(
        triton_server.grpc_url,
        "tiny-encoder-text",
        passages,
        query=RERANK_QUERY,
        parameters={"top_n": "3", "normalize": "true"},
    )
    assert top_order.tolist() == order.tolist()[:3]
    assert np.abs(top - 1 / (1 + np.exp(-full))).max() < 1e-6


LONG_PASSAGE = (
    "The giant panda is a bear species endemic to China. " * 3
    + "It eats bamboo shoots and leaves in the mountains of Sichuan. " * 3
)


@pytest.mark.parametrize(
    "model, kwargs",
    [
        ("tiny-encoder-short", {"max_length": 24}),
        ("tiny-encoder", {"max_length": 20, "window_stride": 6}),
        ("tiny-gemma", {"max_length": 16}),
    ],
)
def test_max_window_scores_are_the_max_over_flagembedding_windows(
    triton_server, test_repository, model, kwargs
):
    model_dir = test_repository.root / f"{model}-text"
    manifest = ModelManifest.load(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / manifest.tokenizer.file))
    pairs = [[RERANK_QUERY, LONG_PASSAGE], [RERANK_QUERY, "hi"], ["bamboo?", LONG_PASSAGE[40:]]]
    max_length = kwargs["max_length"]
    options = parse_options(kwargs, manifest)  # the product's defaults (query_max_length)
    budgets = passage_budgets(
        tokenizer,
        manifest,
        [q for q, _ in pairs],
        max_length=max_length,
        query_max_length=options.query_max_length,
    )
    windows = [
        window_texts(tokenizer, p, b, kwargs.get("window_stride")) for (_, p), b in zip(pairs, budgets)
    ]
    assert len(windows[0]) >= 3 and windows[1] == ["hi"]
    for (_, passage), texts in zip(pairs, windows):
        assert all(t in passage for t in texts)  # windows are cut from the passage
        assert passage.startswith(texts[0]) and passage.endswith(texts[-1])  # and cover it end to end
    for texts, budget in zip(windows, budgets):
        for text in texts:
            assert len(tokenizer.encode(text, add_special_tokens=False).ids) <= budget
    score_kwargs = {"max_length": max_length}
    flat = [[q, t] for (q, _), texts in zip(pairs, windows) for t in texts]
    job = {"kind": KIND[model], "model": str(test_repository.checkpoint(model))}
    oracle = run_oracle(
        [
            {**job, "pairs": flat, "score": score_kwargs, "tokenize": True},
            {**job, "pairs": pairs, "score": score_kwargs, "tokenize": True},
            {
                **job,
                "pairs": flat,
                "score": {"max_length": 4 * max_length, "query_max_length": options.query_max_length},
                "tokenize": True,
            },
        ]
    )
    # The budgets against FlagEmbedding itself: it cuts no window (not too long), and the first
    # window of the long passage is as long as what it keeps of the whole passage (not too short).
    assert oracle[0]["input_ids"] == oracle[2]["input_ids"]
    first_window, whole = len(oracle[0]["input_ids"][0]), len(oracle[1]["input_ids"][0])
    assert whole - 1 <= first_window <= whole
    window_scores = iter(oracle[0]["scores"])
    want = [max(next(window_scores) for _ in texts) for texts in windows]
    got, _ = grpc_text_infer(
        triton_server.grpc_url,
        f"{model}-text",
        [p for _, p in pairs],
        queries=[q for q, _ in pairs],
        parameters={**kwargs, "long_passages": "max_window"},
    )
    assert np.abs(got[0] - np.array(want)).max() < 1e-4
    truncated, _ = grpc_text_infer(
        triton_server.grpc_url,
        f"{model}-text",
        [p for _, p in pairs],
        queries=[q for q, _ in pairs],
        parameters=kwargs,
    )
    assert (
        np.abs(truncated[0] - np.array(oracle[1]["scores"])).max() < 1e-4
    )  # default: FlagEmbedding's truncation


BAD = [
    ({"passages": [b"\xff\xfe bad"], "query": "q"}, {}, "passages[0] is not valid UTF-8"),
    ({"passages": ["fine", "   "], "query": "q"}, {}, "passages[1] is empty"),
    ({"passages": ["p"], "query": "   "}, {}, "query[0] is empty"),
    ({"passages": ["p"]}, {}, "exactly one of query"),
    ({"passages": ["p"], "query": "q", "queries": ["q"]}, {}, "exactly one of query"),
    ({"passages": ["p", "p2"], "queries": ["q"]}, {}, "one query per passage"),
    ({"passages": ["p"] * 1001, "query": "q"}, {}, "1001 passages in one request; the limit is 1000"),
    ({"passages": ["x" * ((1 << 20) + 1)], "query": "q"}, {}, "is 1048577 bytes; the limit is 1048576 bytes"),
    ({"passages": ["p"], "query": "q"}, {"max_length": "-3"}, "max_length must be a positive integer"),
    ({"passages": ["p"], "query": "q"}, {"normalize": "maybe"}, "normalize must be true or false"),
    ({"passages": ["p"], "query": "q"}, {"long_passages": "chunk"}, "long_passages must be one of"),
    ({"passages": ["p"], "query": "q"}, {"cutoff_layers": "4"}, "unknown option(s) cutoff_layers"),
    ({"passages": ["p"], "queries": ["q"]}, {"top_n": 1}, "top_n applies to the rerank shape"),
]


@pytest.mark.parametrize("inputs, parameters, message", BAD, ids=[b[2][:30] for b in BAD])
def test_bad_requests_get_invalid_arg_naming_the_problem(triton_server, inputs, parameters, message):
    with pytest.raises(TextModelError) as info:
        grpc_text_infer(
            triton_server.grpc_url,
            "tiny-encoder-text",
            inputs["passages"],
            query=inputs.get("query"),
            queries=inputs.get("queries"),
            parameters=parameters,
        )
    assert "INVALID_ARG" in info.value.status and message in info.value.message


@pytest.mark.parametrize(
    "parameters, message",
    [({"cutoff_layers": "[1]"}, "not available"), ({"compress_ratio": 3}, "compress_ratio 3 not supported")],
)
def test_layer_options_the_model_lacks_are_invalid_arg(triton_server, parameters, message):
    with pytest.raises(TextModelError) as info:
        grpc_text_infer(
            triton_server.grpc_url, "tiny-lightweight-text", ["p"], query="q", parameters=parameters
        )
    assert "INVALID_ARG" in info.value.status and message in info.value.message


def test_wrong_dtype_is_rejected_and_http_errors_are_clean(triton_server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    wrong = grpcclient.InferInput("passages", [2], "INT64")
    wrong.set_data_from_numpy(np.array([1, 2], dtype=np.int64))
    with pytest.raises(InferenceServerException, match="(?i)data.?type|datatype|TYPE_STRING|BYTES"):
        client.infer("tiny-encoder-text", [wrong])
    client.close()
    with pytest.raises(TextModelError) as info:
        http_text_infer(triton_server.http_url, "tiny-encoder-text", ["   "], query="q")
    assert info.value.status == "400" and "passages[0] is empty" in info.value.message


def test_bad_requests_spare_concurrent_good_ones(triton_server):
    """Good and bad requests in flight together: every good one is answered exactly."""
    from concurrent.futures import ThreadPoolExecutor

    passages = [p for _, p in RERANK]
    want, _ = grpc_text_infer(triton_server.grpc_url, "tiny-encoder-text", passages, query=RERANK_QUERY)

    def good(_):
        return grpc_text_infer(triton_server.grpc_url, "tiny-encoder-text", passages, query=RERANK_QUERY)[0]

    def bad(_):
        with pytest.raises(TextModelError):
            grpc_text_infer(triton_server.grpc_url, "tiny-encoder-text", [b"\xc3"], query="q")

    with ThreadPoolExecutor(8) as pool:
        goods = [pool.submit(good, i) for i in range(8)]
        bads = [pool.submit(bad, i) for i in range(8)]
        results = [f.result() for f in goods]
        [f.result() for f in bads]
    assert all(np.abs(r - want).max() < 1e-5 for r in results)


def test_documented_grpc_request_body_works_as_written(triton_server):
    """The grpcurl body of docs/text-models.md (proto JSON of a KServe v2 ModelInferRequest), sent
    as is through Triton's gRPC service; only the model name is the test model's."""
    import re
    import struct
    from pathlib import Path

    import grpc
    from google.protobuf import json_format
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    page = (Path(__file__).resolve().parents[2] / "docs" / "text-models.md").read_text()
    body = re.search(r"grpcurl [^\n]*-d '(\{.*?\})' \\", page, re.S).group(1)
    request = json_format.Parse(body, service_pb2.ModelInferRequest())
    request.model_name = "tiny-encoder-text"
    with grpc.insecure_channel(triton_server.grpc_url) as channel:
        reply = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    outputs = [o.name for o in reply.outputs]
    raw = reply.raw_output_contents[outputs.index("scores")]
    scores = struct.unpack(f"<{len(raw) // 4}f", raw)
    want, _ = grpc_text_infer(
        triton_server.grpc_url,
        "tiny-encoder-text",
        ["hi", "The giant panda is a bear."],
        query="what is panda?",
        parameters={"normalize": True},
    )
    assert np.abs(np.array(scores) - want[0]).max() < 1e-6 and all(0 < s < 1 for s in scores)


def test_wrong_shape_is_rejected_and_the_model_keeps_serving(triton_server):
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    inputs = []
    for name, values in (("query", [b"q1", b"q2"]), ("passages", [b"p"])):
        tensor = grpcclient.InferInput(name, [len(values)], "BYTES")
        tensor.set_data_from_numpy(np.array(values, dtype=np.object_))
        inputs.append(tensor)
    with pytest.raises(InferenceServerException, match="(?i)shape"):
        client.infer("tiny-encoder-text", inputs)  # query is [1]
    client.close()
    scores, _ = grpc_text_infer(triton_server.grpc_url, "tiny-encoder-text", ["p"], query="q")
    assert scores.shape == (1, 1)
