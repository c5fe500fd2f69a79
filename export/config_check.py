"""Checks of a rendered Triton config, apart from rendering: does it parse as Triton's
ModelConfig, does it agree with its embedded manifest, and with the ONNX graph it serves.

Used by `python -m export` (every written GPU config), `python -m export.tensorrt` and the tests.
"""

from __future__ import annotations

import json

from export.trt_profiles import TRT_PROFILES_PARAMETER, TrtProfile
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import ENCODER_INPUTS, MANIFEST_PARAMETER, SCORES

OUTPUT_NAME = SCORES


def parse_config(text: str):
    """Parse config text as Triton's ModelConfig protobuf (raises on any syntax/field error)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def check_config(config, *, onnx_model=None, gpu_count: int | None = None) -> list[str]:
    """Problems (empty when none) in a parsed GPU config, optionally against an ONNX model.

    Checks: the manifest parameter parses and agrees on name and max_batch_size; the I/O
    contract (input_ids/attention_mask -> scores [1]); instance groups are GPU ones with valid
    indices; dynamic batching; for plans, every profile takes max_batch_size.
    """
    from tritonclient.grpc import model_config_pb2 as pb

    problems: list[str] = []
    if config.max_batch_size < 1:
        problems.append("max_batch_size must be >= 1 (the first dimension is the batch)")
    raw = config.parameters.get(MANIFEST_PARAMETER)
    if raw is None:
        problems.append(f"parameter {MANIFEST_PARAMETER} missing")
    else:
        try:
            manifest = ModelManifest.from_json(raw.string_value)
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{MANIFEST_PARAMETER} does not parse: {exc}")
        else:
            if manifest.name != config.name:
                problems.append(f"manifest name {manifest.name!r} != config name {config.name!r}")
            if manifest.max_batch_size != config.max_batch_size:
                problems.append(
                    f"manifest max_batch_size {manifest.max_batch_size} != "
                    f"config max_batch_size {config.max_batch_size}"
                )
    inputs = {i.name: i for i in config.input}
    if sorted(inputs) != sorted(ENCODER_INPUTS):
        problems.append(f"inputs {sorted(inputs)} != {sorted(ENCODER_INPUTS)}")
    dtypes = {pb.DataType.Name(i.data_type) for i in config.input}
    if len(dtypes) != 1 or not dtypes <= {"TYPE_INT64", "TYPE_INT32"}:
        problems.append(f"input data types {sorted(dtypes)}: expected one of INT64/INT32 for both")
    for i in config.input:
        if list(i.dims) != [-1]:
            problems.append(f"input {i.name} dims {list(i.dims)} != [-1]")
    outputs = {o.name: o for o in config.output}
    if list(outputs) != [OUTPUT_NAME]:
        problems.append(f"outputs {list(outputs)} != ['{OUTPUT_NAME}']")
    else:
        out = outputs[OUTPUT_NAME]
        if out.data_type != pb.TYPE_FP32 or list(out.dims) != [1]:
            problems.append(
                f"output scores must be TYPE_FP32 dims [1], got "
                f"{pb.DataType.Name(out.data_type)} {list(out.dims)}"
            )
    if not config.instance_group:
        problems.append("no instance_group")
    for group in config.instance_group:
        if group.kind != pb.ModelInstanceGroup.KIND_GPU:
            problems.append(f"instance group kind {pb.ModelInstanceGroup.Kind.Name(group.kind)} != KIND_GPU")
        if group.count < 1:
            problems.append(f"instance group count {group.count} < 1")
        gpus = list(group.gpus)
        if len(set(gpus)) != len(gpus) or any(g < 0 for g in gpus):
            problems.append(f"instance group gpus {gpus} must be distinct and >= 0")
        if gpu_count is not None and any(g >= gpu_count for g in gpus):
            problems.append(f"instance group gpus {gpus} not all < visible GPU count {gpu_count}")
    if not config.HasField("dynamic_batching"):
        problems.append("no dynamic_batching")
    else:
        bad = [b for b in config.dynamic_batching.preferred_batch_size if not 1 <= b <= config.max_batch_size]
        if bad:
            problems.append(f"preferred_batch_size {bad} outside 1..{config.max_batch_size}")
    if config.platform == "tensorrt_plan":
        problems += _check_plan_profiles(config)
    elif config.backend == "onnxruntime":
        problems += _check_ort_trt(config)
    else:
        problems.append(f"unexpected backend/platform {config.backend!r}/{config.platform!r}")
    if onnx_model is not None:
        problems += check_against_onnx(config, onnx_model)
    return problems


def _check_plan_profiles(config) -> list[str]:
    raw = config.parameters.get(TRT_PROFILES_PARAMETER)
    if raw is None:
        return [f"plan config lacks parameter {TRT_PROFILES_PARAMETER}"]
    profiles = [TrtProfile.from_dict(p) for p in json.loads(raw.string_value)]
    problems = [
        f"profile {i} max batch {p.max_batch} < max_batch_size {config.max_batch_size}"
        for i, p in enumerate(profiles)
        if p.max_batch < config.max_batch_size
    ]
    for group in config.instance_group:
        bad = [p for p in group.profile if not p.isdigit() or int(p) >= len(profiles)]
        if bad:
            problems.append(f"instance group names unknown profiles {bad}")
    return problems


def _check_ort_trt(config) -> list[str]:
    problems: list[str] = []
    for acc in config.optimization.execution_accelerators.gpu_execution_accelerator:
        if acc.name != "tensorrt":
            continue
        params = dict(acc.parameters)
        if params.get("precision_mode") not in ("FP16", "FP32"):
            problems.append(f"precision_mode {params.get('precision_mode')!r}")
        shapes = {}
        for which in ("min", "opt", "max"):
            text = params.get(f"trt_profile_{which}_shapes")
            if text is None:
                problems.append(f"trt_profile_{which}_shapes missing")
                continue
            parsed = dict(item.split(":") for item in text.split(","))
            if sorted(parsed) != sorted(ENCODER_INPUTS):
                problems.append(f"trt_profile_{which}_shapes names {sorted(parsed)}")
                continue
            shapes[which] = [tuple(int(d) for d in v.split("x")) for v in parsed.values()]
        if "max" in shapes and any(s[0] < config.max_batch_size for s in shapes["max"]):
            problems.append(
                f"TRT EP max profile batch {shapes['max']} < max_batch_size {config.max_batch_size}"
            )
        if len(shapes) == 3:
            for lo, opt, hi in zip(shapes["min"], shapes["opt"], shapes["max"]):
                if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
                    problems.append(f"TRT EP profile not min <= opt <= max: {lo} {opt} {hi}")
    return problems


def check_against_onnx(config, onnx_model) -> list[str]:
    """Names, element types and ranks of the config's tensors against an ONNX ModelProto."""
    from onnx import TensorProto
    from tritonclient.grpc import model_config_pb2 as pb

    onnx_types = {
        TensorProto.INT64: pb.TYPE_INT64,
        TensorProto.INT32: pb.TYPE_INT32,
        TensorProto.FLOAT: pb.TYPE_FP32,
        TensorProto.FLOAT16: pb.TYPE_FP16,
    }
    problems: list[str] = []
    init_names = {i.name for i in onnx_model.graph.initializer}
    graph_io = {
        "input": {v.name: v for v in onnx_model.graph.input if v.name not in init_names},
        "output": {v.name: v for v in onnx_model.graph.output},
    }
    for kind, tensors in (("input", config.input), ("output", config.output)):
        if sorted(t.name for t in tensors) != sorted(graph_io[kind]):
            problems.append(
                f"config {kind}s {sorted(t.name for t in tensors)} != ONNX {kind}s {sorted(graph_io[kind])}"
            )
            continue
        for t in tensors:
            ttype = graph_io[kind][t.name].type.tensor_type
            want = onnx_types.get(ttype.elem_type)
            # a TensorRT 8 plan takes INT32 ids where the ONNX file has INT64
            ok = t.data_type == want or (
                config.platform == "tensorrt_plan"
                and kind == "input"
                and {t.data_type, want} == {pb.TYPE_INT32, pb.TYPE_INT64}
            )
            if not ok:
                problems.append(
                    f"{kind} {t.name}: config {pb.DataType.Name(t.data_type)} vs "
                    f"ONNX elem_type {ttype.elem_type}"
                )
            dims = ttype.shape.dim
            if len(dims) != len(t.dims) + 1:
                problems.append(
                    f"{kind} {t.name}: ONNX rank {len(dims)} != 1 + config rank {len(t.dims)} (batch first)"
                )
                continue
            if dims[0].HasField("dim_value"):
                problems.append(
                    f"{kind} {t.name}: ONNX batch dimension is fixed "
                    f"({dims[0].dim_value}); Triton batching needs it dynamic"
                )
            for d, want_dim in zip(dims[1:], t.dims):
                have = d.dim_value if d.HasField("dim_value") else -1
                if want_dim != -1 and have != want_dim:
                    problems.append(f"{kind} {t.name}: ONNX dim {have} != config dim {want_dim}")
                if want_dim == -1 and have != -1:
                    problems.append(f"{kind} {t.name}: config dim -1 but ONNX fixes it to {have}")
    return problems
