"""export/ort_optimize.py (and the runner's session options) on a tiny XLM-R reranker exported
by the project's exporter."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from export import ort_optimize as oo
from export.onnx_export import export_encoder_onnx
from export.tiny.encoder import build_xlmr_reranker
from reranker_server.ort_session import available_cpus, create_session, session_options

HEADS, HIDDEN = 4, 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    ckpt = build_xlmr_reranker(
        tmp_path_factory.mktemp("xlmr"),
        seed=3,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=HEADS,
        intermediate_size=64,
    )
    return export_encoder_onnx(ckpt, ckpt / "onnx" / "model.onnx", progress=lambda _m: None)


@pytest.fixture(scope="module")
def fused(exported: Path) -> tuple[Path, dict]:
    out = exported.parent / "model.fused.onnx"
    stats = oo.fuse_transformer(exported, out, num_heads=HEADS, hidden_size=HIDDEN)
    return out, stats


def batch(left_pad: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Five pairs of different lengths (3..40 tokens), padded to 40."""
    rng = np.random.default_rng(7)
    lengths = [40, 3, 17, 29, 8]
    ids = np.ones((len(lengths), 40), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        seq = rng.integers(4, 240, n)
        seq[0], seq[-1] = 0, 2
        sl = slice(40 - n, 40) if left_pad else slice(0, n)
        ids[row, sl], mask[row, sl] = seq, 1
    return ids, mask


def scores(path: Path, ids: np.ndarray, mask: np.ndarray, **kw) -> np.ndarray:
    sess = create_session(path, **kw)
    return sess.run(["scores"], {"input_ids": ids, "attention_mask": mask})[0]


def op_counts(path: Path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_fusion_replaces_attention_layernorm_and_gelu(fused):
    path, stats = fused
    assert stats["Attention"] == 2 and stats["SkipLayerNormalization"] >= 2
    ops = op_counts(path)
    assert ops["Attention"] == 2
    assert ops["Softmax"] == 0 and ops["Erf"] == 0  # attention and GELU math now live in fused ops


@pytest.mark.parametrize("left_pad", [False, True])
def test_fused_scores_equal_unfused_within_1e5(exported, fused, left_pad):
    ids, mask = batch(left_pad)
    ref = scores(exported, ids, mask)
    got = scores(fused[0], ids, mask, pre_optimized=True)
    assert ref.shape == got.shape == (5, 1)
    assert np.std(ref) > 1e-2  # the pairs score differently, so equality means something
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_fused_scores_do_not_depend_on_batch_neighbours(fused):
    ids, mask = batch()
    together = scores(fused[0], ids, mask)
    alone = scores(fused[0], ids[1:2, :3], mask[1:2, :3])
    np.testing.assert_allclose(alone[0], together[1], atol=1e-5)


@pytest.mark.parametrize("per_channel", [False, True])
def test_int8_quantizes_matmul_weights_and_stays_close(fused, per_channel, tmp_path):
    out = oo.quantize_int8(
        fused[0], tmp_path / "model.int8.onnx", per_channel=per_channel, op_types=("MatMul",)
    )
    ops = op_counts(out)
    assert ops["MatMulInteger"] + ops["DynamicQuantizeMatMul"] >= 4
    assert ops["Attention"] == 2  # MatMul only: the fused attention stays fp32
    assert ops["MatMul"] == 2  # every encoder MatMul was quantized; the score head stays fp32
    weights = [t for t in onnx.load(str(out)).graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights, "no int8 weights in the quantized model"
    assert oo.int16_pair_safe(out)
    ids, mask = batch()
    ref, got = scores(fused[0], ids, mask), scores(out, ids, mask)
    assert np.isfinite(got).all()
    assert not np.array_equal(got, ref)  # it really runs a different (int8) computation
    assert np.abs(got - ref).max() < 0.25 * (ref.max() - ref.min())
    assert np.corrcoef(got[:, 0], ref[:, 0])[0, 1] > 0.9


def test_int8_default_also_quantizes_the_fused_qkv_projection(fused, tmp_path):
    out = oo.quantize_int8(fused[0], tmp_path / "m.onnx")
    ops = op_counts(out)
    assert ops["QAttention"] == 2 and ops["Attention"] == 0 and ops["MatMul"] == 2  # head: fp32
    ids, mask = batch()
    ref, got = scores(fused[0], ids, mask), scores(out, ids, mask)
    assert np.corrcoef(got[:, 0], ref[:, 0])[0, 1] > 0.9


def test_fp16_variant_runs_with_fp32_io(fused, tmp_path):
    from bench.graphs import convert_fp16

    out = convert_fp16(fused[0], tmp_path / "model.fp16.onnx")
    ids, mask = batch()
    got = scores(out, ids, mask)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, scores(fused[0], ids, mask), atol=5e-2)


def test_runner_session_options():
    opts = session_options(3)
    assert opts.intra_op_num_threads == 3 and opts.inter_op_num_threads == 1
    assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert not opts.enable_mem_pattern
    default = session_options(spinning=True, pre_optimized=True)
    assert default.intra_op_num_threads == available_cpus()
    assert default.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert default.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED


def test_model_dims_reads_config_and_rejects_bad_ones(tmp_path):
    assert oo.model_dims({"num_attention_heads": 12, "hidden_size": 768}) == (12, 768)
    with pytest.raises(oo.OptimizeError, match="num_attention_heads"):
        oo.model_dims({"hidden_size": 768})
    with pytest.raises(oo.OptimizeError, match="not a multiple"):
        oo.model_dims({"num_attention_heads": 5, "hidden_size": 768})


def test_fusion_of_a_non_transformer_graph_fails_clearly(tmp_path):
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    src = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    with pytest.raises(oo.OptimizeError, match="no attention"):
        oo.fuse_transformer(src, tmp_path / "out.onnx", num_heads=4, hidden_size=32)


def test_cli_fuses_and_quantizes(exported, tmp_path):
    out = tmp_path / "model.int8.onnx"
    assert oo.main([str(exported), str(out), "--fuse", "--int8"]) == 0
    ops = op_counts(out)
    assert ops["QAttention"] == 2 and ops["MatMul"] == 2 and oo.int16_pair_safe(out)  # head fp32
    assert not (tmp_path / "model.int8.fused.onnx").exists()
