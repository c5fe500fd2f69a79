"""The LLM reranker Triton model (reranker_server.llm_model) run without a server, through a fake
`triton_python_backend_utils`: validation per request, grouping, chunking, parity with FlagEmbedding.

The model directories are written by the real exporter (export/llm_export.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.support import fake_pb_utils

fake_pb_utils.install()

from export.llm_export import export_llm  # noqa: E402
from export.tiny.decoders import (
    build_gemma2_lightweight_reranker,
    build_gemma_reranker,  # noqa: E402
    build_minicpm_layerwise_reranker,
)
from reranker_server.llm_model import TritonPythonModel, instance_device, resolve_checkpoint  # noqa: E402
from reranker_server.triton_responses import FAILURES_METRIC  # noqa: E402
from tests.support.fake_pb_utils import FakeRequest  # noqa: E402
from tests.support.oracle import run_oracle  # noqa: E402

ATOL = 1e-5
PAIRS = [
    ["what is panda?", "hi"],
    [
        "what is panda?",
        "The giant panda (Ailuropoda melanoleuca), sometimes called a panda bear or simply "
        "panda, is a bear species endemic to China.",
    ],
    ["大熊猫是什么？", "大熊猫是中国特有的熊科动物。🐼"],
    ["hi", "Paris is the capital of France."],
]
MODELS = {  # label -> (family, oracle kind, builder)
    "gemma": ("gemma", "llm", build_gemma_reranker),
    "layerwise": ("minicpm_layerwise", "layerwise", build_minicpm_layerwise_reranker),
    "lightweight": ("gemma2_lightweight", "lightweight", build_gemma2_lightweight_reranker),
}
ORACLE_JOBS = {  # key -> (label, compute_score kwargs)
    "gemma": ("gemma", {}),
    "layerwise": ("layerwise", {}),
    "layerwise_246": ("layerwise", {"cutoff_layers": [2, 4, 6]}),
    "layerwise_4": ("layerwise", {"cutoff_layers": 4}),
    "lightweight": ("lightweight", {}),
    "lightweight_46_c2": (
        "lightweight",
        {"cutoff_layers": [4, 6], "compress_ratio": 2, "compress_layers": [2, 5]},
    ),
    "lightweight_8_c4": ("lightweight", {"compress_ratio": 4, "compress_layers": [3]}),
}


@pytest.fixture(scope="module", autouse=True)
def single_thread(single_torch_thread):
    """One intra-op thread here and in the oracle (tests/conftest.py)."""


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """label -> (checkpoint dir, model dir, manifest)."""
    root = tmp_path_factory.mktemp("llm_model")
    out = {}
    for label, (family, _, build) in MODELS.items():
        ckpt = build(root / f"ckpt_{label}")
        manifest = export_llm(
            ckpt,
            root / "repo" / label,
            name=label,
            family=family,
            dtype="float32",
            max_batch_size=8,
            source=label,
        )
        out[label] = (ckpt, root / "repo" / label, manifest)
    return out


@pytest.fixture(scope="module")
def oracle(exported) -> dict:
    keys = list(ORACLE_JOBS)
    jobs = [
        {
            "kind": MODELS[label][1],
            "model": str(exported[label][0]),
            "pairs": PAIRS,
            "score": score,
            "tokenize": not score,
        }
        for label, score in ORACLE_JOBS.values()
    ]
    results = run_oracle(jobs)
    for key, result in zip(keys, results):
        assert "error" not in result, f"oracle failed for {key}: {result['error']}"
    return dict(zip(keys, results))


def _args(model_dir: Path, manifest, *, max_batch_size: int = 8, extra: dict | None = None) -> dict:
    params = {"reranker_manifest": {"string_value": manifest.to_json()}}
    params.update({k: {"string_value": str(v)} for k, v in (extra or {}).items()})
    config = {
        "name": manifest.name,
        "backend": "python",
        "max_batch_size": max_batch_size,
        "parameters": params,
        "output": [{"name": "scores", "data_type": "TYPE_FP32", "dims": [-1]}],
    }
    return {
        "model_config": json.dumps(config),
        "model_repository": str(model_dir),
        "model_version": "1",
        "model_instance_kind": "CPU",
        "model_instance_device_id": "0",
        "model_name": manifest.name,
    }


@pytest.fixture(scope="module")
def models(exported) -> dict:
    out = {}
    for label, (_, model_dir, manifest) in exported.items():
        model = TritonPythonModel()
        model.initialize(_args(model_dir, manifest, extra={"max_batch_tokens": 256}))
        out[label] = model
    return out


def _pad(rows: list[list[int]], side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    width = max(map(len, rows))
    ids = np.zeros((len(rows), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        sl = slice(0, len(r)) if side == "right" else slice(width - len(r), width)
        ids[i, sl] = r
        mask[i, sl] = 1
    return ids, mask


def _request(
    oracle,
    label: str,
    params: dict | None = None,
    *,
    rows: list[int] | None = None,
    side: str = "right",
    segments: bool = True,
    **override,
) -> FakeRequest:
    tok = oracle[label]
    pick = list(range(len(PAIRS))) if rows is None else rows
    ids, mask = _pad([tok["input_ids"][i] for i in pick], side)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if segments and "query_lengths" in tok:
        inputs["segment_lengths"] = np.array(
            [[tok["query_lengths"][i], tok["prompt_lengths"][i]] for i in pick], dtype=np.int64
        )
    inputs.update(override)
    return FakeRequest(inputs, params)


def _expected(result: dict, rows: list[int] | None = None) -> np.ndarray:
    scores = np.asarray(result["scores"], dtype=np.float32)
    scores = scores[:, None] if scores.ndim == 1 else scores.T
    return scores if rows is None else scores[rows]


def _scores(response) -> np.ndarray:
    assert not response.has_error(), response.error().message()
    return fake_pb_utils.get_output_tensor_by_name(response, "scores").as_numpy()


def _error(response) -> str:
    assert response.has_error(), "expected an error response"
    return response.error().message()


def test_mixed_dynamic_batch_each_request_gets_its_own_answer(models, oracle):
    reqs = [
        _request(oracle, "layerwise", {"cutoff_layers": "[6, 2, 4]"}),
        _request(oracle, "layerwise", {"cutoff_layers": 9}),  # bad: its own error
        _request(oracle, "layerwise", {"cutoff_layers": "4"}, rows=[3, 1]),
        _request(oracle, "layerwise"),  # default: last layer
        _request(oracle, "layerwise", {"cutoff_layers": 4}, rows=[0], side="left"),
        _request(oracle, "layerwise", {"cutoff_layers": "2,4,6"}, rows=[2]),
    ]
    responses = models["layerwise"].execute(reqs)
    assert len(responses) == len(reqs)
    np.testing.assert_allclose(_scores(responses[0]), _expected(oracle["layerwise_246"]), atol=ATOL, rtol=0)
    message = _error(responses[1])
    assert "[9]" in message and "allowed layers: 2..6" in message
    assert responses[1].error().code() == fake_pb_utils.TritonError.INVALID_ARG
    np.testing.assert_allclose(
        _scores(responses[2]), _expected(oracle["layerwise_4"], [3, 1]), atol=ATOL, rtol=0
    )
    np.testing.assert_allclose(_scores(responses[3]), _expected(oracle["layerwise"]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(
        _scores(responses[4]), _expected(oracle["layerwise_4"], [0]), atol=ATOL, rtol=0
    )
    np.testing.assert_allclose(
        _scores(responses[5]), _expected(oracle["layerwise_246"], [2]), atol=ATOL, rtol=0
    )
    assert _scores(responses[0]).dtype == np.float32 and _scores(responses[0]).shape == (len(PAIRS), 3)


def test_gemma_scores(models, oracle):
    resp = models["gemma"].execute(
        [_request(oracle, "gemma"), _request(oracle, "gemma", rows=[2], side="left")]
    )
    np.testing.assert_allclose(_scores(resp[0]), _expected(oracle["gemma"]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(_scores(resp[1]), _expected(oracle["gemma"], [2]), atol=ATOL, rtol=0)
    assert "allowed layers: 3" in _error(
        models["gemma"].execute([_request(oracle, "gemma", {"cutoff_layers": 2})])[0]
    )
    assert "compress_ratio 2 not supported" in _error(
        models["gemma"].execute([_request(oracle, "gemma", {"compress_ratio": 2})])[0]
    )


def test_lightweight_compression_parameters_and_segments(models, oracle):
    reqs = [
        _request(
            oracle,
            "lightweight",
            {"cutoff_layers": "[4,6]", "compress_ratio": "2", "compress_layers": "[2, 5]"},
        ),
        _request(oracle, "lightweight", {"compress_ratio": 4, "compress_layers": 3}),
        _request(oracle, "lightweight"),
        _request(oracle, "lightweight", {"compress_ratio": 2, "compress_layers": "[3]"}, segments=False),
        _request(
            oracle, "lightweight", {"compress_ratio": 2}, segments=False
        ),  # default layers [8]: no effect
    ]
    resp = models["lightweight"].execute(reqs)
    np.testing.assert_allclose(_scores(resp[0]), _expected(oracle["lightweight_46_c2"]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(_scores(resp[1]), _expected(oracle["lightweight_8_c4"]), atol=ATOL, rtol=0)
    np.testing.assert_allclose(_scores(resp[2]), _expected(oracle["lightweight"]), atol=ATOL, rtol=0)
    assert "segment_lengths" in _error(resp[3])
    np.testing.assert_allclose(_scores(resp[4]), _expected(oracle["lightweight"]), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    "case,params,override,message",
    [
        ("shape", {}, {"attention_mask": np.ones((4, 3), dtype=np.int64)}, "does not match attention_mask"),
        (
            "one_dim",
            {},
            {"input_ids": np.ones(5, dtype=np.int64), "attention_mask": np.ones(5, dtype=np.int64)},
            "2-D",
        ),
        (
            "mask_values",
            {},
            {
                "attention_mask": np.full((1, 3), 2, dtype=np.int64),
                "input_ids": np.ones((1, 3), dtype=np.int64),
            },
            "only 0 and 1",
        ),
        (
            "holes",
            {},
            {
                "attention_mask": np.array([[1, 0, 1]], dtype=np.int64),
                "input_ids": np.ones((1, 3), dtype=np.int64),
            },
            "contiguous",
        ),
        (
            "empty_row",
            {},
            {
                "attention_mask": np.array([[1, 1], [0, 0]], dtype=np.int64),
                "input_ids": np.ones((2, 2), dtype=np.int64),
            },
            "has no tokens",
        ),
        (
            "vocab",
            {},
            {
                "input_ids": np.array([[1, 100000]], dtype=np.int64),
                "attention_mask": np.ones((1, 2), dtype=np.int64),
            },
            "token id out of range",
        ),
        (
            "negative",
            {},
            {
                "input_ids": np.array([[1, -1]], dtype=np.int64),
                "attention_mask": np.ones((1, 2), dtype=np.int64),
            },
            "token id out of range",
        ),
        (
            "too_many",
            {},
            {"input_ids": np.ones((9, 2), dtype=np.int64), "attention_mask": np.ones((9, 2), dtype=np.int64)},
            "the limit is 8",
        ),
        (
            "floats",
            {},
            {
                "input_ids": np.ones((1, 2), dtype=np.float32),
                "attention_mask": np.ones((1, 2), dtype=np.int64),
            },
            "integer",
        ),
        ("missing", {}, {"input_ids": None}, "required"),
        ("ratio", {"compress_ratio": 3}, {}, "allowed: 1, 2, 4, 8"),
        ("ratio_text", {"compress_ratio": "two"}, {}, "compress_ratio must be an integer"),
        ("cutoff_text", {"cutoff_layers": "[4, x]"}, {}, "must be an integer"),
        ("cutoff_bool", {"cutoff_layers": True}, {}, "must be an integer"),
        ("cutoff_empty", {"cutoff_layers": "[]"}, {}, "cutoff_layers is empty"),
        ("cutoff_odd", {"cutoff_layers": "[3]"}, {}, "allowed layers: 2..8 step 2"),
        ("compress_range", {"compress_ratio": 2, "compress_layers": "[20]"}, {}, "allowed layers: 0..8"),
        (
            "segments_shape",
            {"compress_ratio": 2, "compress_layers": [3]},
            {"segment_lengths": np.ones((2, 2), dtype=np.int64)},
            "segment_lengths must have shape [4, 2]",
        ),
        (
            "segments_big",
            {"compress_ratio": 2, "compress_layers": [3]},
            {"segment_lengths": np.full((4, 2), 500, dtype=np.int64)},
            "at most the pair's token count",
        ),
    ],
)
def test_bad_requests_get_clear_errors_and_spare_the_batch(models, oracle, case, params, override, message):
    bad = _request(oracle, "lightweight", params, **override)
    good = _request(oracle, "lightweight", rows=[1])
    before = fake_pb_utils.metric_value(FAILURES_METRIC, model="lightweight", kind="invalid_argument")
    resp = models["lightweight"].execute([good, bad, good])
    assert message in _error(resp[1])
    assert resp[1].error().code() == fake_pb_utils.TritonError.INVALID_ARG
    assert (
        fake_pb_utils.metric_value(FAILURES_METRIC, model="lightweight", kind="invalid_argument")
        == before + 1
    )
    for r in (resp[0], resp[2]):
        np.testing.assert_allclose(_scores(r), _expected(oracle["lightweight"], [1]), atol=ATOL, rtol=0)


def test_invalid_parameter_json_and_compress_on_layerwise(models, oracle):
    tok = oracle["layerwise"]
    ids, mask = _pad(tok["input_ids"][:1])
    bad_json = FakeRequest({"input_ids": ids, "attention_mask": mask}, raw_parameters="{not json")
    compress = _request(oracle, "layerwise", {"compress_layers": "[3]"})
    resp = models["layerwise"].execute([bad_json, compress])
    assert "not valid JSON" in _error(resp[0])
    assert "compress_layers is not supported" in _error(resp[1])


def test_too_long_rows_are_rejected(models, oracle):
    model = models["layerwise"]
    saved = model.serving.limits
    model.serving.limits = replace(saved, max_positions=10)
    try:
        message = _error(model.execute([_request(oracle, "layerwise")])[0])
    finally:
        model.serving.limits = saved
    assert "exceeds the model's maximum of 10" in message


def test_equal_settings_share_length_sorted_chunks_under_the_token_budget(models, oracle, monkeypatch):
    model = models["layerwise"]
    calls = []
    original = model.serving.scorer.score_rows

    def spy(ids, lengths, cutoffs, *args):
        calls.append((tuple(ids.shape), tuple(cutoffs)))
        return original(ids, lengths, cutoffs, *args)

    monkeypatch.setattr(model.serving.scorer, "score_rows", spy)
    reqs = [_request(oracle, "layerwise", {"cutoff_layers": [4]}, rows=[i]) for i in range(len(PAIRS))]
    reqs.append(_request(oracle, "layerwise", {"cutoff_layers": [2, 6]}))
    resp = model.execute(reqs)
    assert all(not r.has_error() for r in resp)
    four = [c for c in calls if c[1] == (4,)]
    assert sum(shape[0] for shape, _ in four) == len(PAIRS)  # all four requests in shared chunks
    assert len(four) < len(PAIRS)
    for shape, _ in calls:
        assert shape[0] == 1 or shape[0] * shape[1] <= 256
    widths = [shape[1] for shape, _ in four]
    assert widths == sorted(widths, reverse=True)  # longest first


def test_a_failing_group_does_not_fail_the_others(models, oracle, monkeypatch):
    model = models["layerwise"]
    original = model.serving.scorer.score_rows

    def flaky(ids, lengths, cutoffs, *args):
        if list(cutoffs) == [3]:
            raise RuntimeError("CUDA out of memory (simulated)")
        return original(ids, lengths, cutoffs, *args)

    monkeypatch.setattr(model.serving.scorer, "score_rows", flaky)
    before = fake_pb_utils.metric_value(FAILURES_METRIC, model="layerwise", kind="out_of_memory")
    resp = model.execute(
        [
            _request(oracle, "layerwise", {"cutoff_layers": 3}),
            _request(oracle, "layerwise", {"cutoff_layers": 4}),
        ]
    )
    assert "out of memory" in _error(resp[0])
    assert resp[0].error().code() == fake_pb_utils.TritonError.INTERNAL
    assert fake_pb_utils.metric_value(FAILURES_METRIC, model="layerwise", kind="out_of_memory") == before + 1
    assert fake_pb_utils.Logger.records[-1][0] == "error"
    np.testing.assert_allclose(_scores(resp[1]), _expected(oracle["layerwise_4"]), atol=ATOL, rtol=0)


def test_out_of_memory_chunks_are_retried_in_halves(models, oracle, monkeypatch):
    model = models["layerwise"]
    original = model.serving.scorer.score_rows
    sizes = []

    def small_memory(ids, lengths, cutoffs, *args):
        sizes.append(ids.shape[0])
        if ids.shape[0] > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return original(ids, lengths, cutoffs, *args)

    monkeypatch.setattr(model.serving.scorer, "score_rows", small_memory)
    resp = model.execute([_request(oracle, "layerwise", {"cutoff_layers": [2, 4, 6]}, rows=[0, 3, 2])])
    np.testing.assert_allclose(
        _scores(resp[0]), _expected(oracle["layerwise_246"], [0, 3, 2]), atol=ATOL, rtol=0
    )
    assert sizes.count(1) == 3 and max(sizes) > 1


def test_initialize_checks_manifest_against_checkpoint(exported):
    _, model_dir, manifest = exported["layerwise"]
    wrong = replace(manifest, llm=replace(manifest.llm, cutoff_layers=[1, 2, 3]))
    with pytest.raises(ValueError, match="do not match the checkpoint"):
        TritonPythonModel().initialize(_args(model_dir, wrong))
    missing = replace(manifest, llm=replace(manifest.llm, checkpoint_dir=""))
    with pytest.raises(ValueError, match="checkpoint_dir"):
        TritonPythonModel().initialize(_args(model_dir, missing))


def test_checkpoint_dir_and_device_resolution(exported, tmp_path):
    ckpt, model_dir, manifest = exported["gemma"]
    args = {"model_repository": str(model_dir), "model_version": "1"}
    assert resolve_checkpoint(args, manifest.llm.checkpoint_dir) == model_dir / "1" / "checkpoint"
    assert resolve_checkpoint(args, "checkpoint") == model_dir / "1" / "checkpoint"  # version-relative
    assert resolve_checkpoint(args, str(ckpt)) == ckpt
    with pytest.raises(FileNotFoundError):
        resolve_checkpoint(args, "nowhere")
    assert instance_device({"model_instance_kind": "GPU", "model_instance_device_id": "1"}) == "cuda:1"
    assert instance_device({"model_instance_kind": "CPU", "model_instance_device_id": "0"}) == "cpu"
