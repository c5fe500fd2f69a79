"""Raw KServe v2 requests to the text models, as a caller in any language sends them: tritonclient
BYTES tensors over gRPC, or a plain JSON body over HTTP (no project client involved)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import numpy as np


class TextModelError(Exception):
    """The server answered with an error (HTTP status / gRPC status and message)."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def grpc_text_infer(
    url: str,
    model: str,
    passages: Sequence[Any],
    *,
    query: Any | None = None,
    queries: Sequence[Any] | None = None,
    parameters: dict | None = None,
):
    """(scores [k, n], indices) from the text model over gRPC; TextModelError on an error answer."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    def tensor(name: str, values: Sequence[Any]):
        array = np.array(
            [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values], dtype=np.object_
        )
        t = grpcclient.InferInput(name, [len(values)], "BYTES")
        t.set_data_from_numpy(array)
        return t

    inputs = [tensor("passages", passages)]
    if query is not None:
        inputs.append(tensor("query", [query]))
    if queries is not None:
        inputs.append(tensor("queries", queries))
    client = grpcclient.InferenceServerClient(url)
    try:
        result = client.infer(model, inputs, parameters=parameters)
    except InferenceServerException as exc:
        raise TextModelError(str(exc.status()), exc.message() or str(exc)) from None
    finally:
        client.close()
    return result.as_numpy("scores"), result.as_numpy("indices")


def http_text_infer(
    url: str,
    model: str,
    passages: Sequence[str],
    *,
    query: str | None = None,
    queries: Sequence[str] | None = None,
    parameters: dict | None = None,
):
    """(scores [k, n], indices) from a curl-style JSON request to /v2/models/<model>/infer."""
    inputs = [{"name": "passages", "shape": [len(passages)], "datatype": "BYTES", "data": list(passages)}]
    if query is not None:
        inputs.append({"name": "query", "shape": [1], "datatype": "BYTES", "data": [query]})
    if queries is not None:
        inputs.append(
            {"name": "queries", "shape": [len(queries)], "datatype": "BYTES", "data": list(queries)}
        )
    body: dict[str, Any] = {"inputs": inputs}
    if parameters:
        body["parameters"] = parameters
    request = urllib.request.Request(
        f"http://{url}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise TextModelError(str(exc.code), json.loads(exc.read() or b"{}").get("error", "")) from None
    outputs = {o["name"]: o for o in answer["outputs"]}
    scores = np.array(outputs["scores"]["data"], dtype=np.float32).reshape(outputs["scores"]["shape"])
    indices = np.array(outputs["indices"]["data"], dtype=np.int64) if "indices" in outputs else np.array([])
    return scores, indices
