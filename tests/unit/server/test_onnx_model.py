"""The encoder Python-backend model (ONNX Runtime runner) without a server: fake pb_utils."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support import fake_pb_utils

fake_pb_utils.install()

from reranker_core.packing import plan_chunks  # noqa: E402
from reranker_server import onnx_model  # noqa: E402
from reranker_server.triton_responses import FAILURES_METRIC, OutputSpec  # noqa: E402
from tests.support.fake_pb_utils import FakeRequest  # noqa: E402


def invalid_count() -> float:
    return fake_pb_utils.metric_value(FAILURES_METRIC, model="enc", kind="invalid_argument")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from export.__main__ import main as export_main
    from export.tiny.encoder import build_xlmr_reranker

    ckpt = build_xlmr_reranker(tmp_path_factory.mktemp("ckpt"), seed=7)
    repo = tmp_path_factory.mktemp("repo")
    assert export_main(["--model", str(ckpt), "--name", "enc", "--repository", str(repo)]) == 0
    from google.protobuf import json_format, text_format
    from tritonclient.grpc import model_config_pb2

    cfg = text_format.Parse(
        (repo / "enc" / "configs" / "embedded.pbtxt").read_text(), model_config_pb2.ModelConfig()
    )
    m = onnx_model.TritonPythonModel()
    m.init_args = {
        "model_config": json.dumps(json_format.MessageToDict(cfg, preserving_proto_field_name=True)),
        "model_repository": str(repo / "enc"),
        "model_version": "1",
        "model_instance_kind": "CPU",
        "model_instance_device_id": "0",
    }
    m.initialize(m.init_args)
    return m


def request(rows, pad=1):
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    return FakeRequest({"input_ids": ids, "attention_mask": mask})


def scores(response):
    return fake_pb_utils.get_output_tensor_by_name(response, "scores").as_numpy()


ROWS = [[0, 5, 6, 7, 2, 2, 8, 2], [0, 9, 2, 2, 10, 11, 12, 13, 14, 15, 16, 2], [0, 20, 2, 2, 21, 2]]


def test_scores_do_not_depend_on_batch_neighbours(model):
    alone = [scores(model.execute([request([r])])[0])[0, 0] for r in ROWS]
    together = model.execute([request(ROWS[:2]), request(ROWS[2:])])
    merged = np.concatenate([scores(r) for r in together]).ravel()
    assert np.abs(merged - np.array(alone)).max() < 1e-5
    assert scores(together[0]).shape == (2, 1) and scores(together[0]).dtype == np.float32


def test_bad_request_gets_its_own_error_and_others_are_answered(model):
    bad = FakeRequest({"input_ids": np.array([[0, 5, 2]]), "attention_mask": np.array([[1, 1]])})
    out_of_vocab = request([[0, 10**6, 2]])
    good = request(ROWS)
    before = invalid_count()
    responses = model.execute([bad, good, out_of_vocab])
    assert invalid_count() == before + 2
    assert responses[0].has_error() and "does not match" in responses[0].error().message()
    assert responses[0].error().code() == fake_pb_utils.TritonError.INVALID_ARG
    assert not responses[1].has_error() and scores(responses[1]).shape == (3, 1)
    assert responses[2].has_error() and "out of range" in responses[2].error().message()


def test_runtime_failure_answers_the_batch_with_an_error(model, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(model.scorer.session, "run", boom)
    before = fake_pb_utils.metric_value(FAILURES_METRIC, model="enc", kind="internal")
    responses = model.execute([request(ROWS), request(ROWS[:1])])
    for response in responses:
        assert response.has_error() and "kaboom" in response.error().message()
        assert response.error().code() == fake_pb_utils.TritonError.INTERNAL
    # answered, and also logged and counted (one per failed request)
    assert fake_pb_utils.metric_value(FAILURES_METRIC, model="enc", kind="internal") == before + 2
    level, line = fake_pb_utils.Logger.records[-1]
    assert level == "error" and "enc" in line and "RuntimeError: kaboom" in line


def test_output_name_and_type_come_from_the_model_config(model):
    assert (model.output.name, model.output.dtype) == ("scores", np.dtype(np.float32))
    config = {"name": "enc", "output": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [1]}]}
    with pytest.raises(ValueError, match="declares no output 'scores'"):
        OutputSpec(config, "scores")


def test_chunks_respect_the_token_budget_and_keep_every_row():
    lengths = [5, 100, 7, 100, 3, 50]
    chunks = plan_chunks(lengths, max_tokens=200)
    assert sorted(i for c in chunks for i in c) == list(range(6))
    for chunk in chunks:
        assert len(chunk) * max(lengths[i] for i in chunk) <= 200 or len(chunk) == 1
    assert plan_chunks([500], max_tokens=10) == [[0]]


def test_int8_graph_scores_do_not_depend_on_batch_neighbours(tmp_path):
    """Dynamic int8 quantization scales activations per ORT run: the runner runs such graphs one
    row at a time, so a pair's score is the same alone or inside any dynamic batch."""
    from export.__main__ import main as export_main
    from export.tiny.encoder import build_xlmr_reranker
    from reranker_server.encoder_scorer import EncoderScorer, rows_per_run_for
    from reranker_server.ort_session import create_session
    from reranker_server.token_requests import TokenRows

    ckpt = build_xlmr_reranker(tmp_path / "ckpt", seed=8)
    assert (
        export_main(
            ["--model", str(ckpt), "--name", "q", "--repository", str(tmp_path), "--cpu-graph", "int8"]
        )
        == 0
    )
    graph = tmp_path / "q" / "1" / "model.cpu.onnx"
    assert rows_per_run_for(graph) == 1 and rows_per_run_for(tmp_path / "q" / "1" / "model.onnx") == 0
    scorer = EncoderScorer(create_session(graph), pad_id=1, max_batch_tokens=4096, max_rows_per_run=1)
    rows = [np.array(r) for r in ROWS]
    alone = [scorer.score([TokenRows([r])])[0][0, 0] for r in rows]
    together = scorer.score([TokenRows(rows)])[0][:, 0]
    assert np.array_equal(np.array(alone, dtype=np.float32), together)


def test_execution_providers_default_to_cpu_and_keep_cpu_as_fallback():
    have = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_model.session_providers("", 0, have) == ["CPUExecutionProvider"]
    assert onnx_model.session_providers("cpu", 0, have) == ["CPUExecutionProvider"]
    assert onnx_model.session_providers("tensorrt, CUDA", 3, have) == [
        ("TensorrtExecutionProvider", {"device_id": "3"}),
        ("CUDAExecutionProvider", {"device_id": "3"}),
        "CPUExecutionProvider",
    ]


def test_execution_providers_name_the_problem():
    with pytest.raises(ValueError, match="unknown execution provider.*rocm"):
        onnx_model.session_providers("rocm", 0, ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="no CUDAExecutionProvider.*onnxruntime-gpu"):
        onnx_model.session_providers("cuda", 0, ["CPUExecutionProvider"])


def test_served_session_uses_the_configured_provider(model):
    """The runner reads `execution_providers` from the config (absent: cpu); a provider this
    ONNX Runtime lacks fails the model load with a message naming it."""
    import onnxruntime as ort

    assert model.scorer.session.get_providers() == ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the CUDA provider: the missing-provider path cannot be shown")
    args = dict(model.init_args)
    config = json.loads(args["model_config"])
    config["parameters"]["execution_providers"] = {"string_value": "cuda"}
    args["model_config"] = json.dumps(config)
    with pytest.raises(ValueError, match="no CUDAExecutionProvider"):
        onnx_model.TritonPythonModel().initialize(args)
