"""The README's three examples (Python SDK, text model over KServe v2 HTTP, rerank HTTP API) work as
written against the real embedded Triton server; only addresses and the model name are the test's.
Expected scores come from the text model called directly over gRPC."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.support.api_server import ApiProcess
from tests.support.text_requests import grpc_text_infer

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
MODEL = "tiny-encoder"


def only(pattern: str) -> re.Match:
    """The one match of `pattern` in the README (a second one would make the test ambiguous)."""
    matches = list(re.finditer(pattern, README, re.S))
    assert len(matches) == 1, f"{len(matches)} README matches for {pattern!r}"
    return matches[0]


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def normalized_scores(grpc_url: str, query: str, passages: list[str]) -> np.ndarray:
    scores, _ = grpc_text_infer(
        grpc_url, MODEL + "-text", passages, query=query, parameters={"normalize": True}
    )
    return scores[0]


def test_readme_python_sdk_example(triton_server):
    code = only(r"```python\n(.*?)```").group(1)
    assert code.count('"localhost:8001"') == 1 and code.count('"bge-reranker-v2-m3"') == 1
    code = code.replace('"localhost:8001"', repr(triton_server.grpc_url))
    code = code.replace('"bge-reranker-v2-m3"', repr(MODEL))
    call = re.search(r"client\.rerank\((\".*?\"), (\[.*?\]), top_n=1\)", code)
    query, passages = ast.literal_eval(call.group(1)), ast.literal_eval(call.group(2))
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), namespace)
    want = normalized_scores(triton_server.grpc_url, query, passages)
    result = namespace["r"]
    assert printed.getvalue().count("\n") == 1
    assert result.index == int(np.argmax(want)) and result.passage == passages[result.index]
    assert abs(result.score - float(want.max())) < 1e-5


def test_readme_text_model_example(triton_server):
    match = only(r"curl -s localhost:8000/v2/models/([\w.-]+)/infer -d '(\{.*?\})'")
    assert match.group(1) == "bge-reranker-v2-m3-text"
    body = json.loads(match.group(2))
    answer = post_json(f"http://{triton_server.http_url}/v2/models/{MODEL}-text/infer", body)
    outputs = {o["name"]: o for o in answer["outputs"]}
    inputs = {i["name"]: i["data"] for i in body["inputs"]}
    want = normalized_scores(triton_server.grpc_url, inputs["query"][0], inputs["passages"])
    scores = np.array(outputs["scores"]["data"], dtype=np.float32)
    assert np.abs(scores - want).max() < 1e-6 and all(0 < s < 1 for s in scores)
    top_n = body["parameters"]["top_n"]
    assert outputs["indices"]["data"] == [int(i) for i in np.argsort(-want)[:top_n]]


@pytest.fixture(scope="module")
def api(triton_server, tmp_path_factory):
    log = tmp_path_factory.mktemp("readme-api") / "api.log"
    proc = ApiProcess(triton_server.grpc_url, ["--default-model", MODEL], log_file=log).start()
    yield proc
    proc.stop()


def test_readme_rerank_api_example(triton_server, api):
    match = only(r"curl -s localhost:8080/v2/rerank [^\n]*\\\n\s*-d '(\{.*?\})'")
    body = json.loads(match.group(1))
    assert body["model"] == "bge-reranker-v2-m3"
    answer = post_json(api.url + "/v2/rerank", {**body, "model": MODEL})
    want = normalized_scores(triton_server.grpc_url, body["query"], body["documents"])
    results = answer["results"]
    assert len(results) == body["top_n"]
    assert results[0]["index"] == int(np.argmax(want))
    assert abs(results[0]["relevance_score"] - float(want.max())) < 1e-5
