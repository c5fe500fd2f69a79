"""The GPU configs (ORT CUDA, ORT TensorRT EP, TensorRT plan) parse as Triton's ModelConfig and
agree with the ONNX contract, the manifest and the TensorRT profiles."""

from __future__ import annotations

import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("tritonclient.grpc.model_config_pb2")

from onnx import TensorProto, helper  # noqa: E402
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from export.config_check import check_config, parse_config  # noqa: E402
from export.gpu_configs import (  # noqa: E402
    ORT_GPU,
    ORT_TRT,
    TRT_PLAN,
    VARIANTS,
    GpuOptions,
    TrtProfile,
    config_path,
    render_gpu_config,
    render_gpu_configs,
    write_gpu_configs,
)
from reranker_core.families import ENCODER, GEMMA  # noqa: E402
from reranker_core.manifest import ModelManifest, TokenizerInfo  # noqa: E402
from reranker_core.tensors import MANIFEST_PARAMETER  # noqa: E402


def manifest(
    max_positions: int = 8192,
    max_batch_size: int = 64,
    name: str = "bge-reranker-v2-m3",
    family: str = ENCODER,
) -> ModelManifest:
    return ModelManifest(
        family=family,
        name=name,
        max_positions=max_positions,
        max_batch_size=max_batch_size,
        vocab_size=250002,
        tokenizer=TokenizerInfo(sha256="ab" * 32, pad_token_id=1, cls_token_id=0),
    )


def tiny_onnx(*, output: str = "scores", batch_dim="batch", id_type=TensorProto.INT64):
    """input_ids, attention_mask [batch, seq] -> scores [batch, 1], the export's contract."""
    ids = helper.make_tensor_value_info("input_ids", id_type, [batch_dim, "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [batch_dim, "seq"])
    out = helper.make_tensor_value_info(output, TensorProto.FLOAT, [batch_dim, 1])
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["ids_f", "mask_f"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes"], [output], keepdims=1),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [1])
    graph = helper.make_graph(nodes, "reranker", [ids, mask], [out], initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


OPTIONS = [
    GpuOptions(),
    GpuOptions(
        max_batch_size=32,
        instance_count=2,
        gpus=[0, 1],
        max_queue_delay_us=500,
        preferred_batch_sizes=[8, 16, 32],
    ),
    GpuOptions(max_length=512, trt_precision="fp32", warmup=False, trt_engine_cache=False),
    GpuOptions(
        gpus=[3], trt_profiles=[TrtProfile(1, 1, 16, 128, 64, 512), TrtProfile(1, 1, 4, 4096, 64, 8192)]
    ),
]


@pytest.mark.parametrize("options", OPTIONS, ids=["defaults", "two-gpus", "fp32-512", "two-profiles"])
@pytest.mark.parametrize("max_positions", [512, 8192])
def test_every_variant_parses_and_matches_onnx(options, max_positions):
    if options.max_length and options.max_length > max_positions:
        options = options.replace(max_length=max_positions)
    if options.trt_profiles and max_positions < 8192:
        options = options.replace(trt_profiles=None)
    m = manifest(max_positions)
    model = tiny_onnx()
    for variant, text in render_gpu_configs(m, options).items():
        config = parse_config(text)
        assert config.name == m.name
        assert check_config(config, onnx_model=model, gpu_count=4) == [], variant
        want_batch = options.max_batch_size or m.max_batch_size
        assert config.max_batch_size == want_batch
        embedded = json.loads(config.parameters[MANIFEST_PARAMETER].string_value)
        assert embedded["max_batch_size"] == want_batch
        assert {k: v for k, v in embedded.items() if k != "max_batch_size"} == {
            k: v for k, v in json.loads(m.to_json()).items() if k != "max_batch_size"
        }
        (group,) = config.instance_group
        assert group.kind == pb.ModelInstanceGroup.KIND_GPU
        assert group.count == options.instance_count
        assert list(group.gpus) == (options.gpus or [])
        assert config.dynamic_batching.max_queue_delay_microseconds == options.max_queue_delay_us
        assert list(config.dynamic_batching.preferred_batch_size) == options.preferred_batch_sizes
        assert bool(config.model_warmup) == options.warmup


def test_variants_use_the_right_backend():
    configs = {v: parse_config(t) for v, t in render_gpu_configs(manifest()).items()}
    assert configs[ORT_GPU].backend == "onnxruntime"
    assert not configs[ORT_GPU].optimization.execution_accelerators.gpu_execution_accelerator
    assert configs[ORT_TRT].backend == "onnxruntime"
    assert configs[TRT_PLAN].platform == "tensorrt_plan" and not configs[TRT_PLAN].backend


def test_trt_ep_keeps_layernorm_fp32_and_profile_covers_model():
    m = manifest(8192, 48)
    config = parse_config(render_gpu_config(m, ORT_TRT, GpuOptions(trt_engine_cache_path="/c/x")))
    (acc,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    params = dict(acc.parameters)
    assert acc.name == "tensorrt"
    assert params["precision_mode"] == "FP16"
    assert params["trt_layer_norm_fp32_fallback"] == "true"
    assert params["trt_engine_cache_enable"] == "true"
    assert params["trt_engine_cache_path"] == "/c/x"
    assert params["trt_profile_min_shapes"] == "input_ids:1x1,attention_mask:1x1"
    assert params["trt_profile_opt_shapes"] == "input_ids:24x256,attention_mask:24x256"
    assert params["trt_profile_max_shapes"] == "input_ids:48x8192,attention_mask:48x8192"
    capped = parse_config(render_gpu_config(m, ORT_TRT, GpuOptions(max_length=1024)))
    params = dict(capped.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters)
    assert params["trt_profile_max_shapes"] == "input_ids:48x1024,attention_mask:48x1024"


def test_plan_profiles_recorded_and_named_per_instance():
    options = OPTIONS[3]
    config = parse_config(render_gpu_config(manifest(), TRT_PLAN, options))
    recorded = json.loads(config.parameters["tensorrt_profiles"].string_value)
    assert [TrtProfile.from_dict(p) for p in recorded] == options.trt_profiles
    assert list(config.instance_group[0].profile) == ["0", "1"]
    single = parse_config(render_gpu_config(manifest(), TRT_PLAN))
    assert list(single.instance_group[0].profile) == []
    int32 = parse_config(render_gpu_config(manifest(), TRT_PLAN, GpuOptions(trt_input_dtype="int32")))
    assert {i.data_type for i in int32.input} == {pb.TYPE_INT32}
    assert check_config(int32, onnx_model=tiny_onnx()) == []  # TensorRT 8 casts ids to INT32


def test_tiny_onnx_contract_runs():
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(tiny_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    ids = np.array([[0, 5, 2, 1], [0, 7, 9, 2]], dtype=np.int64)
    mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=np.int64)
    (scores,) = sess.run(["scores"], {"input_ids": ids, "attention_mask": mask})
    assert scores.shape == (2, 1) and scores.dtype == np.float32
    assert scores[:, 0].tolist() == [7.0, 18.0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_checks_catch_mismatches(variant):
    """check_config must fail on each kind of drift (else the tests above prove nothing)."""
    text = render_gpu_config(manifest(), variant, GpuOptions(gpus=[0, 2]))
    config = parse_config(text)
    assert any("ONNX outputs" in p for p in check_config(config, onnx_model=tiny_onnx(output="logits")))
    assert any(
        "batch dimension is fixed" in p for p in check_config(config, onnx_model=tiny_onnx(batch_dim=8))
    )
    assert any(
        "elem_type" in p for p in check_config(config, onnx_model=tiny_onnx(id_type=TensorProto.FLOAT))
    )
    assert any("visible GPU count" in p for p in check_config(config, gpu_count=2))
    bad = parse_config(text)
    bad.max_batch_size = 128
    assert any("manifest max_batch_size" in p for p in check_config(bad))
    if variant == TRT_PLAN:
        assert any("profile 0 max batch" in p for p in check_config(bad))
    if variant == ORT_TRT:
        assert any("TRT EP max profile batch" in p for p in check_config(bad))
    bad = parse_config(text)
    bad.output[0].dims[:] = [2]
    assert any("TYPE_FP32 dims [1]" in p for p in check_config(bad))
    bad = parse_config(text)
    bad.instance_group[0].kind = pb.ModelInstanceGroup.KIND_CPU
    assert any("KIND_GPU" in p for p in check_config(bad))
    bad = parse_config(text)
    bad.ClearField("dynamic_batching")
    assert "no dynamic_batching" in check_config(bad)


@pytest.mark.parametrize(
    "options, message",
    [
        (GpuOptions(gpus=[0, 0]), "distinct"),
        (GpuOptions(gpus=[-1]), "distinct"),
        (GpuOptions(instance_count=0), "instance_count"),
        (GpuOptions(preferred_batch_sizes=[128]), "preferred batch sizes"),
        (GpuOptions(trt_precision="INT8"), "FP16 or FP32"),
        (GpuOptions(max_length=9000), "max_positions"),
        (GpuOptions(max_queue_delay_us=-1), "max_queue_delay_us"),
        (GpuOptions(trt_profiles=[TrtProfile(1, 1, 8, 128, 32, 8192)]), "Triton rejects"),
        (GpuOptions(trt_profiles=[TrtProfile(1, 1, 8, 128, 64, 512)]), "covers max_length"),
        (GpuOptions(trt_input_dtype="float32"), "trt_input_dtype"),
    ],
)
def test_bad_options_are_rejected_with_a_clear_error(options, message):
    variant = TRT_PLAN if options.trt_profiles or options.trt_input_dtype != "int64" else ORT_TRT
    with pytest.raises(ValueError, match=message):
        render_gpu_config(manifest(), variant, options)


def test_profile_ordering_is_validated():
    with pytest.raises(ValueError, match="min <= opt <= max"):
        TrtProfile(1, 1, 64, 128, 32, 512)


def test_llm_manifests_are_refused():
    with pytest.raises(ValueError, match="encoder"):
        render_gpu_config(manifest(family=GEMMA), ORT_GPU)


def test_unknown_variant():
    with pytest.raises(ValueError, match="unknown GPU config variant"):
        render_gpu_config(manifest(), "tensorflow")


def test_written_layout(tmp_path):
    written = write_gpu_configs(
        tmp_path, manifest(), GpuOptions(gpus=[1], max_batch_size=16, instance_count=2)
    )
    assert written == [tmp_path / "config.pbtxt", tmp_path / "configs" / "onnxruntime_trt.pbtxt"]
    assert config_path(tmp_path, TRT_PLAN) == tmp_path / "configs" / "tensorrt_plan.pbtxt"
    for path in written:
        config = parse_config(path.read_text())
        assert config.max_batch_size == 16 and config.instance_group[0].count == 2
        assert check_config(config, onnx_model=tiny_onnx(), gpu_count=2) == []


def test_a_config_that_does_not_check_out_is_not_written(tmp_path, monkeypatch):
    import export.config_check as config_check

    monkeypatch.setattr(config_check, "OUTPUT_NAME", "logits")
    with pytest.raises(ValueError, match="config does not fit the model: outputs"):
        write_gpu_configs(tmp_path, manifest())
    assert not list(tmp_path.rglob("*.pbtxt"))
