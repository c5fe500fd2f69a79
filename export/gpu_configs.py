"""Render the GPU Triton configs of an encoder reranker from its manifest.

Three variants, one template each in export/templates/:

- ``onnxruntime_gpu``: the native ONNX Runtime backend on the CUDA execution provider
  (written as the model's ``config.pbtxt``: the default on GPU nodes);
- ``onnxruntime_trt``: the same ONNX file through ORT's TensorRT execution provider
  (fp16 with LayerNorm kept fp32, engine cache, one explicit optimization profile);
- ``tensorrt_plan``: a TensorRT engine ``1/model.plan`` built by ``export/tensorrt.py``.

Variants other than the default go to ``configs/<variant>.pbtxt``; the server picks one with
``--model-config-name=<variant>`` (models without that file fall back to ``config.pbtxt``).

The copy of the manifest embedded in each config carries that config's ``max_batch_size``, so
a client that splits requests by the manifest never sends more than the config accepts.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from export.fill_template import fill_template, pbtxt_string
from reranker_core.manifest import ENCODER, MANIFEST_PARAMETER, ModelManifest

ORT_GPU = "onnxruntime_gpu"
ORT_TRT = "onnxruntime_trt"
TRT_PLAN = "tensorrt_plan"
VARIANTS = (ORT_GPU, ORT_TRT, TRT_PLAN)
DEFAULT_VARIANT = ORT_GPU
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "scores"
TRT_PROFILES_PARAMETER = "tensorrt_profiles"
DEFAULT_TRT_CACHE_ROOT = "/var/cache/reranker-trt"
TRITON_DTYPES = {"int64": "TYPE_INT64", "int32": "TYPE_INT32"}


@dataclass(frozen=True)
class TrtProfile:
    """One TensorRT optimization profile: (batch, sequence length) at min / opt / max."""
    min_batch: int = 1
    min_len: int = 1
    opt_batch: int = 1
    opt_len: int = 1
    max_batch: int = 1
    max_len: int = 1

    def __post_init__(self) -> None:
        for dim in ("batch", "len"):
            lo, opt, hi = (getattr(self, f"{k}_{dim}") for k in ("min", "opt", "max"))
            if not 1 <= lo <= opt <= hi:
                raise ValueError(f"TensorRT profile needs 1 <= min <= opt <= max for {dim}, "
                                 f"got {lo}/{opt}/{hi}")

    def shapes(self, which: str, names: Sequence[str] = INPUT_NAMES) -> str:
        """`input_ids:BxL,attention_mask:BxL` for which in min/opt/max (trtexec and ORT syntax)."""
        batch, length = getattr(self, f"{which}_batch"), getattr(self, f"{which}_len")
        return ",".join(f"{n}:{batch}x{length}" for n in names)

    def to_dict(self) -> dict[str, list[int]]:
        return {k: [getattr(self, f"{k}_batch"), getattr(self, f"{k}_len")]
                for k in ("min", "opt", "max")}

    @classmethod
    def from_dict(cls, data: dict[str, Sequence[int]]) -> "TrtProfile":
        return cls(*data["min"], *data["opt"], *data["max"])


@dataclass
class GpuOptions:
    """Deployment knobs for the GPU configs; None means "take it from the manifest"."""
    max_batch_size: Optional[int] = None       # pairs per request (and per batched execution)
    max_length: Optional[int] = None           # longest sequence the TRT profile covers
    instance_count: int = 1                    # model instances per listed GPU
    gpus: Optional[list[int]] = None           # GPU indices as the server sees them; None = all
    queue_delay_us: int = 2000                 # dynamic batcher's max_queue_delay_microseconds
    preferred_batch_sizes: list[int] = field(default_factory=list)
    warmup: bool = True                        # model_warmup (model READY only after it ran)
    warmup_length: int = 16
    # TensorRT (EP and plan)
    trt_precision: str = "FP16"                # FP16 (LayerNorm kept fp32) or FP32
    trt_workspace_bytes: int = 4 << 30
    trt_engine_cache: bool = True
    trt_engine_cache_path: Optional[str] = None  # default /var/cache/reranker-trt/<name>
    trt_opt_batch: Optional[int] = None        # default max_batch_size // 2 (at least 1)
    trt_opt_length: Optional[int] = None       # default min(256, max length)
    trt_input_dtype: str = "int64"             # engine input type (TensorRT 10 keeps INT64)
    trt_profiles: Optional[list[TrtProfile]] = None  # plan only; default: one from the above

    def replace(self, **changes: Any) -> "GpuOptions":
        return dataclasses.replace(self, **changes)


def effective_max_batch(manifest: ModelManifest, options: GpuOptions) -> int:
    value = options.max_batch_size or manifest.max_batch_size
    if value < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {value}")
    return value


def effective_max_length(manifest: ModelManifest, options: GpuOptions) -> int:
    value = options.max_length or manifest.max_positions
    if not 1 <= value <= manifest.max_positions:
        raise ValueError(f"max_length {value} outside 1..{manifest.max_positions} "
                         f"(the model's max_positions)")
    return value


def default_profile(manifest: ModelManifest, options: GpuOptions) -> TrtProfile:
    """min 1x1, opt (batch/2 x min(256, max_len)), max (max_batch_size x max_length)."""
    max_batch = effective_max_batch(manifest, options)
    max_len = effective_max_length(manifest, options)
    opt_batch = options.trt_opt_batch or max(1, max_batch // 2)
    opt_len = options.trt_opt_length or min(256, max_len)
    return TrtProfile(1, 1, min(opt_batch, max_batch), min(opt_len, max_len), max_batch, max_len)


def trt_profiles(manifest: ModelManifest, options: GpuOptions) -> list[TrtProfile]:
    """The plan's profiles; each must take max_batch_size (Triton checks every profile)."""
    profiles = options.trt_profiles or [default_profile(manifest, options)]
    max_batch = effective_max_batch(manifest, options)
    max_len = effective_max_length(manifest, options)
    for i, p in enumerate(profiles):
        if p.max_batch < max_batch:
            raise ValueError(f"TensorRT profile {i} max batch {p.max_batch} < max_batch_size "
                             f"{max_batch}; Triton rejects such an engine")
        if p.max_len > manifest.max_positions:
            raise ValueError(f"TensorRT profile {i} max length {p.max_len} > the model's "
                             f"max_positions {manifest.max_positions}")
    if max(p.max_len for p in profiles) < max_len:
        raise ValueError(f"no TensorRT profile covers max_length {max_len}")
    return profiles


def _embedded_manifest(manifest: ModelManifest, max_batch: int) -> str:
    data = json.loads(manifest.to_json())
    data["max_batch_size"] = max_batch
    return pbtxt_string(json.dumps(data, sort_keys=True))


def _instance_group(options: GpuOptions, profiles: Optional[Sequence[int]] = None) -> str:
    if options.instance_count < 1:
        raise ValueError(f"instance_count must be >= 1, got {options.instance_count}")
    lines = ["instance_group [", "  {", f"    count: {options.instance_count}", "    kind: KIND_GPU"]
    if options.gpus is not None:
        gpus = list(options.gpus)
        if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
            raise ValueError(f"gpus must be distinct non-negative indices, got {gpus}")
        lines.append(f"    gpus: [ {', '.join(str(g) for g in gpus)} ]")
    if profiles:
        lines.append(f"    profile: [ {', '.join(pbtxt_string(str(p)) for p in profiles)} ]")
    return "\n".join(lines + ["  }", "]"])


def _dynamic_batching(options: GpuOptions, max_batch: int) -> str:
    if options.queue_delay_us < 0:
        raise ValueError(f"queue_delay_us must be >= 0, got {options.queue_delay_us}")
    lines = ["dynamic_batching {"]
    preferred = sorted(set(options.preferred_batch_sizes))
    if any(not 1 <= b <= max_batch for b in preferred):
        raise ValueError(f"preferred batch sizes {preferred} must lie in 1..{max_batch}")
    if preferred:
        lines.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in preferred)} ]")
    lines.append(f"  max_queue_delay_microseconds: {options.queue_delay_us}")
    return "\n".join(lines + ["}"])


def _warmup(options: GpuOptions, dtype: str, max_len: int) -> str:
    """One zero-filled batch of 1: loads kernels / builds TRT EP engines before READY."""
    if not options.warmup:
        return ""
    length = min(options.warmup_length, max_len)
    inputs = "\n".join(
        f'    inputs {{ key: "{n}" value: {{ data_type: {dtype} dims: [ {length} ] zero_data: true }} }}'
        for n in INPUT_NAMES)
    return "\n".join(["model_warmup [", "  {", '    name: "zeros"', "    batch_size: 1",
                      inputs, "    count: 1", "  }", "]"])


def _precision(options: GpuOptions) -> str:
    precision = options.trt_precision.upper()
    if precision not in ("FP16", "FP32"):
        raise ValueError(f"trt_precision must be FP16 or FP32, got {options.trt_precision!r}")
    return precision


def _check_encoder(manifest: ModelManifest) -> None:
    if manifest.family != ENCODER:
        raise ValueError(f"GPU ONNX/TensorRT configs are for encoder rerankers; {manifest.name} "
                         f"is {manifest.family!r} (its GPU config is the Python-backend LLM one)")


def render_gpu_config(manifest: ModelManifest, variant: str,
                      options: Optional[GpuOptions] = None) -> str:
    """The config.pbtxt text of one GPU variant for this manifest."""
    options = options or GpuOptions()
    _check_encoder(manifest)
    max_batch = effective_max_batch(manifest, options)
    max_len = effective_max_length(manifest, options)
    common = {"name": manifest.name, "max_batch_size": max_batch,
              "dynamic_batching": _dynamic_batching(options, max_batch),
              "manifest": _embedded_manifest(manifest, max_batch)}
    if variant == ORT_GPU:
        return fill_template(ORT_GPU, {**common, "instance_group": _instance_group(options),
                                       "model_warmup": _warmup(options, "TYPE_INT64", max_len)})
    if variant == ORT_TRT:
        profile = default_profile(manifest, options)
        cache = options.trt_engine_cache_path or f"{DEFAULT_TRT_CACHE_ROOT}/{manifest.name}"
        return fill_template(ORT_TRT, {
            **common, "instance_group": _instance_group(options),
            "model_warmup": _warmup(options, "TYPE_INT64", max_len),
            "precision_mode": _precision(options),
            "workspace_bytes": int(options.trt_workspace_bytes),
            "engine_cache_enable": "true" if options.trt_engine_cache else "false",
            "engine_cache_path": cache,
            "profile_min_shapes": profile.shapes("min"), "profile_opt_shapes": profile.shapes("opt"),
            "profile_max_shapes": profile.shapes("max")})
    if variant == TRT_PLAN:
        profiles = trt_profiles(manifest, options)
        dtype = TRITON_DTYPES.get(options.trt_input_dtype)
        if dtype is None:
            raise ValueError(f"trt_input_dtype must be one of {sorted(TRITON_DTYPES)}")
        names = list(range(len(profiles))) if len(profiles) > 1 else None
        return fill_template(TRT_PLAN, {
            **common, "instance_group": _instance_group(options, names),
            "model_warmup": _warmup(options, dtype, max_len), "input_data_type": dtype,
            "profiles_json": pbtxt_string(json.dumps([p.to_dict() for p in profiles]))})
    raise ValueError(f"unknown GPU config variant {variant!r}; known: {', '.join(VARIANTS)}")


def render_onnxruntime_gpu_config(manifest: ModelManifest, *, max_batch_size: Optional[int] = None,
                                  instance_count: int = 1, gpus: Optional[Sequence[int]] = None,
                                  max_queue_delay_us: int = 2000, **more: Any) -> str:
    """The default GPU config (config.pbtxt); empty or None gpus = every visible GPU."""
    options = GpuOptions(max_batch_size=max_batch_size, instance_count=instance_count,
                         gpus=list(gpus) if gpus else None, queue_delay_us=max_queue_delay_us,
                         **more)
    return render_gpu_config(manifest, ORT_GPU, options)


def render_gpu_configs(manifest: ModelManifest, options: Optional[GpuOptions] = None,
                       variants: Iterable[str] = VARIANTS) -> dict[str, str]:
    """{variant: config text} for the requested variants."""
    return {v: render_gpu_config(manifest, v, options) for v in variants}


def config_path(model_dir: Path | str, variant: str) -> Path:
    """Where a variant lives: config.pbtxt for the default one, configs/<variant>.pbtxt else."""
    model_dir = Path(model_dir)
    return model_dir / "config.pbtxt" if variant == DEFAULT_VARIANT else \
        model_dir / "configs" / f"{variant}.pbtxt"


def write_gpu_configs(model_dir: Path | str, manifest: ModelManifest,
                      options: Optional[GpuOptions] = None,
                      variants: Iterable[str] = (ORT_GPU, ORT_TRT)) -> list[Path]:
    """Write the variants into a model directory (tensorrt_plan only once a plan exists)."""
    written = []
    for variant, text in render_gpu_configs(manifest, options, variants).items():
        path = config_path(model_dir, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


# ---- checks shared by the tests, export and export/tensorrt.py ---------------------------------

def parse_config(text: str):
    """Parse config text as Triton's ModelConfig protobuf (raises on any syntax/field error)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def check_config(config, *, onnx_model=None, gpu_count: Optional[int] = None) -> list[str]:
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
                problems.append(f"manifest max_batch_size {manifest.max_batch_size} != "
                                f"config max_batch_size {config.max_batch_size}")
    inputs = {i.name: i for i in config.input}
    if sorted(inputs) != sorted(INPUT_NAMES):
        problems.append(f"inputs {sorted(inputs)} != {sorted(INPUT_NAMES)}")
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
            problems.append(f"output scores must be TYPE_FP32 dims [1], got "
                            f"{pb.DataType.Name(out.data_type)} {list(out.dims)}")
    if not config.instance_group:
        problems.append("no instance_group")
    for group in config.instance_group:
        if group.kind != pb.ModelInstanceGroup.KIND_GPU:
            problems.append(f"instance group kind {pb.ModelInstanceGroup.Kind.Name(group.kind)} "
                            f"!= KIND_GPU")
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
        bad = [b for b in config.dynamic_batching.preferred_batch_size
               if not 1 <= b <= config.max_batch_size]
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
    problems = [f"profile {i} max batch {p.max_batch} < max_batch_size {config.max_batch_size}"
                for i, p in enumerate(profiles) if p.max_batch < config.max_batch_size]
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
            if sorted(parsed) != sorted(INPUT_NAMES):
                problems.append(f"trt_profile_{which}_shapes names {sorted(parsed)}")
                continue
            shapes[which] = [tuple(int(d) for d in v.split("x")) for v in parsed.values()]
        if "max" in shapes and any(s[0] < config.max_batch_size for s in shapes["max"]):
            problems.append(f"TRT EP max profile batch {shapes['max']} < max_batch_size "
                            f"{config.max_batch_size}")
        if len(shapes) == 3:
            for lo, opt, hi in zip(shapes["min"], shapes["opt"], shapes["max"]):
                if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
                    problems.append(f"TRT EP profile not min <= opt <= max: {lo} {opt} {hi}")
    return problems


def check_against_onnx(config, onnx_model) -> list[str]:
    """Names, element types and ranks of the config's tensors against an ONNX ModelProto."""
    from onnx import TensorProto
    from tritonclient.grpc import model_config_pb2 as pb

    onnx_types = {TensorProto.INT64: pb.TYPE_INT64, TensorProto.INT32: pb.TYPE_INT32,
                  TensorProto.FLOAT: pb.TYPE_FP32, TensorProto.FLOAT16: pb.TYPE_FP16}
    problems: list[str] = []
    init_names = {i.name for i in onnx_model.graph.initializer}
    graph_io = {"input": {v.name: v for v in onnx_model.graph.input if v.name not in init_names},
                "output": {v.name: v for v in onnx_model.graph.output}}
    for kind, tensors in (("input", config.input), ("output", config.output)):
        if sorted(t.name for t in tensors) != sorted(graph_io[kind]):
            problems.append(f"config {kind}s {sorted(t.name for t in tensors)} != ONNX "
                            f"{kind}s {sorted(graph_io[kind])}")
            continue
        for t in tensors:
            ttype = graph_io[kind][t.name].type.tensor_type
            want = onnx_types.get(ttype.elem_type)
            # a TensorRT 8 plan takes INT32 ids where the ONNX file has INT64
            ok = t.data_type == want or (config.platform == "tensorrt_plan" and kind == "input"
                                         and {t.data_type, want} == {pb.TYPE_INT32, pb.TYPE_INT64})
            if not ok:
                problems.append(f"{kind} {t.name}: config {pb.DataType.Name(t.data_type)} vs "
                                f"ONNX elem_type {ttype.elem_type}")
            dims = ttype.shape.dim
            if len(dims) != len(t.dims) + 1:
                problems.append(f"{kind} {t.name}: ONNX rank {len(dims)} != 1 + config rank "
                                f"{len(t.dims)} (batch first)")
                continue
            if dims[0].HasField("dim_value"):
                problems.append(f"{kind} {t.name}: ONNX batch dimension is fixed "
                                f"({dims[0].dim_value}); Triton batching needs it dynamic")
            for d, want_dim in zip(dims[1:], t.dims):
                have = d.dim_value if d.HasField("dim_value") else -1
                if want_dim != -1 and have != want_dim:
                    problems.append(f"{kind} {t.name}: ONNX dim {have} != config dim {want_dim}")
                if want_dim == -1 and have != -1:
                    problems.append(f"{kind} {t.name}: config dim -1 but ONNX fixes it to {have}")
    return problems
