"""Failed requests are counted by kind in Triton's metrics (custom metric of the Python-backend
models), on the real embedded server."""

from __future__ import annotations

import re
import urllib.request

import numpy as np
import pytest

FAILURES_METRIC = "reranker_request_failures_total"  # the documented metric name

_LINE = re.compile(r"^(?P<name>\w+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def failures(server, model: str, kind: str) -> float:
    """reranker_request_failures_total{model, kind} as the metrics endpoint reports it (0 if absent)."""
    url = f"http://127.0.0.1:{server.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    for m in _LINE.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        if m.group("name") == FAILURES_METRIC and labels == {"model": model, "kind": kind}:
            return float(m.group("value"))
    return 0.0


def _infer(server, model: str, ids: np.ndarray, mask: np.ndarray, parameters=None) -> str:
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    inputs = []
    for name, array in (("input_ids", ids), ("attention_mask", mask)):
        tensor = grpcclient.InferInput(name, list(array.shape), "INT64")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    try:
        with pytest.raises(InferenceServerException) as info:
            client.infer(model, inputs, parameters=parameters)
    finally:
        client.close()
    return info.value.message() or str(info.value)


def test_bad_encoder_request_is_counted_as_invalid_argument(triton_server):
    ids = np.full((2, 6), 5, np.int64)
    mask = np.ones((2, 6), np.int64)
    mask[1, 3] = 0  # a hole: rejected by the model
    before = failures(triton_server, "tiny-encoder", "invalid_argument")
    assert "contiguous" in _infer(triton_server, "tiny-encoder", ids, mask)
    assert failures(triton_server, "tiny-encoder", "invalid_argument") == before + 1
    assert failures(triton_server, "tiny-encoder", "internal") == 0


def test_bad_llm_parameter_is_counted_as_invalid_argument(triton_server):
    ids = np.full((1, 6), 5, np.int64)
    mask = np.ones((1, 6), np.int64)
    before = failures(triton_server, "tiny-layerwise", "invalid_argument")
    message = _infer(triton_server, "tiny-layerwise", ids, mask, parameters={"cutoff_layers": "[999]"})
    assert "not available" in message and "allowed layers" in message
    assert failures(triton_server, "tiny-layerwise", "invalid_argument") == before + 1
