"""The encoder's bf16 CPU variant (--cpu-graph bf16, OpenVINO) as the runner runs it: same tensor
contract, ranking quality on the trained fixture, and plain fp32 fallback on a CPU without
native bf16 (faked through $RERANKER_CPU_FLAGS, so this runs on any x86 CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.precision import QUALITY_SEED, export_variant, score_pairs, variant_scorer
from export.precision_agreement import agreement
from export.tiny import relevance_task
from export.tiny.trained import trained_encoder_checkpoint
from reranker_core.cpu_features import FLAGS_ENV, bf16_support
from reranker_server.openvino_session import create_openvino_session, effective_precision

NATIVE = bf16_support().native
needs_native_bf16 = pytest.mark.skipif(
    not NATIVE, reason=f"this CPU has {bf16_support().describe()}: its bf16 variant runs fp32"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The trained tiny XLM-R exported as fp32 (ORT fused), bf16 (OpenVINO) and int8."""
    root = tmp_path_factory.mktemp("precision")
    checkpoint = trained_encoder_checkpoint()
    return {v: export_variant(checkpoint, root, v) for v in ("fp32", "bf16", "int8")}


@pytest.fixture(scope="module")
def held_out():
    queries = relevance_task.evaluation_set(QUALITY_SEED, 10, 30)
    pairs = [p for q in queries for p in q.pairs()]
    groups = [i for i, q in enumerate(queries) for _ in q.passages]
    return pairs, groups


def test_bf16_export_writes_openvino_ir_and_a_bf16_config(exported):
    model_dir = exported["bf16"]
    assert (model_dir / "1" / "model.xml").is_file() and (model_dir / "1" / "model.bin").is_file()
    config = (model_dir / "configs" / "embedded.pbtxt").read_text()
    assert 'string_value: "model.xml"' in config and 'string_value: "bf16"' in config
    assert 'key: "inference_precision"' not in (exported["fp32"] / "configs" / "embedded.pbtxt").read_text()
    assert not (exported["fp32"] / "configs" / "openvino.pbtxt").exists()


def test_bf16_export_writes_a_config_for_tritons_openvino_backend(exported):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from export.config_check import check_config, parse_config
    from reranker_core.manifest import ModelManifest
    from reranker_core.tensors import MANIFEST_PARAMETER

    text = (exported["bf16"] / "configs" / "openvino.pbtxt").read_text()
    config = text_format.Parse(text, model_config_pb2.ModelConfig())
    assert config.backend == "openvino" and config.name == "bf16"
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.parameters["HINT_BF16"].string_value == "YES"
    assert [i.name for i in config.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in config.output] == ["scores"]
    manifest = ModelManifest.from_json(config.parameters[MANIFEST_PARAMETER].string_value)
    assert manifest == ModelManifest.load(exported["bf16"])
    # the GPU checks' I/O contract holds (their instance-kind and backend rules are GPU-only)
    problems = check_config(parse_config(text))
    assert all("KIND_GPU" in p or "backend" in p for p in problems), problems


def test_openvino_session_keeps_the_tensor_contract(exported):
    session = create_openvino_session(exported["bf16"] / "1" / "model.xml", "bf16")
    ids = np.array([[0, 5, 6, 2, 2, 7, 8, 2], [0, 5, 2, 2, 9, 2, 1, 1]], dtype=np.int64)
    mask = (ids != 1).astype(np.int64)
    (scores,) = session.run(["scores"], {"input_ids": ids, "attention_mask": mask})
    assert scores.dtype == np.float32 and scores.shape == (2, 1) and np.all(np.isfinite(scores))


@needs_native_bf16
def test_bf16_ranks_like_fp32_on_the_trained_fixture(exported, held_out):
    pairs, groups = held_out
    fp32 = score_pairs(exported["fp32"], variant_scorer(exported["fp32"], "fp32"), pairs)
    bf16_scorer = variant_scorer(exported["bf16"], "bf16")
    assert bf16_scorer.session.get_providers() == ["OpenVINO CPU (bf16)"]
    bf16 = score_pairs(exported["bf16"], bf16_scorer, pairs)
    a = agreement(fp32, bf16, groups)
    assert a.spread > 1.0  # a model whose scores mean something
    assert a.max_abs_diff > 0  # really computed in bf16, not fp32 again
    assert a.meets_targets(), a.summary()


def test_int8_figures_on_the_trained_fixture(exported, held_out):
    """The int8 graph's drift on the same fixture (stated in docs/benchmarks.md): it keeps the
    top of each ranking but moves scores by more than bf16 does."""
    pairs, groups = held_out
    fp32 = score_pairs(exported["fp32"], variant_scorer(exported["fp32"], "fp32"), pairs)
    int8 = score_pairs(exported["int8"], variant_scorer(exported["int8"], "int8"), pairs)
    a = agreement(fp32, int8, groups)
    assert a.max_abs_diff > 1e-3 and a.kendall_tau > 0.9 and a.top_k_agreement >= 8, a.summary()


def test_without_native_bf16_the_runner_says_so_and_runs_fp32(exported, held_out, monkeypatch, capsys):
    monkeypatch.setenv(FLAGS_ENV, "sse2 avx2 avx512f")
    pairs, _ = held_out
    scorer = variant_scorer(exported["bf16"], "bf16")
    message = capsys.readouterr().out
    assert "bf16 requested but this CPU has no native bf16" in message and "running fp32" in message
    assert scorer.session.get_providers() == ["OpenVINO CPU (fp32)"]
    fp32 = score_pairs(exported["fp32"], variant_scorer(exported["fp32"], "fp32"), pairs[:60])
    np.testing.assert_allclose(score_pairs(exported["bf16"], scorer, pairs[:60]), fp32, atol=1e-4)


def test_precision_names_are_checked():
    assert effective_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="fp32 or bf16"):
        effective_precision("fp16")


def test_export_on_a_cpu_without_native_bf16_says_what_a_server_there_runs(tmp_path, monkeypatch, capsys):
    from export.tiny.encoder import build_xlmr_reranker

    monkeypatch.setenv(FLAGS_ENV, "sse2 avx2")
    export_variant(build_xlmr_reranker(tmp_path / "ckpt", seed=3), tmp_path / "repo", "bf16")
    out = capsys.readouterr().out
    assert "this CPU has no native bf16" in out and "runs this variant in fp32" in out
