"""Write a Triton model directory for an encoder (XLM-RoBERTa) reranker.

<repository>/<name>/
  config.pbtxt            Triton's native onnxruntime backend, CUDA EP (GPU nodes)
  configs/onnxruntime_trt.pbtxt   the same on ORT's TensorRT EP (--model-config-name=onnxruntime_trt)
  configs/embedded.pbtxt  Python backend running ONNX Runtime (the embedded CPU server)
  configs/openvino.pbtxt  --cpu-graph bf16: Triton's native openvino backend (CPU nodes, NGC image)
  (configs/tensorrt_plan.pbtxt and 1/model.plan come later from python -m export.tensorrt)
  reranker.json           the model contract (also inside every config as "reranker_manifest")
  tokenizer/              tokenizer.json (+ config) the client must use
  1/model.onnx            fp32 or fp16 graph: input_ids, attention_mask INT64 -> scores FP32 [B, 1]
                          (standard ONNX ops only: the GPU backends and TensorRT take it as is)
  1/model.cpu.onnx        the embedded CPU runner's graph: ONNX Runtime transformer fusion (fp32,
                          exact) or fused + int8 (opt-in, --cpu-graph int8); absent with --cpu-graph plain
  1/model.xml, model.bin  --cpu-graph bf16: OpenVINO IR (fp32 weights) the embedded runner and
                          Triton's native openvino backend (configs/openvino.pbtxt) run in bf16
  1/model.py              imports reranker_server.onnx_model.TritonPythonModel
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.checkpoint import read_config, require_safetensors
from export.errors import ExportError, require_ints
from export.fill_template import fill_template, pbtxt_string
from export.gpu_configs import GpuOptions, write_gpu_configs
from export.onnx_export import convert_to_fp16, export_encoder_onnx, onnx_scores
from export.tokenizer_files import copy_tokenizer
from reranker_core.cpu_features import bf16_support
from reranker_core.families import ENCODER
from reranker_core.limits import ENCODER_MAX_BATCH_SIZE, ONNX_CPU_MAX_BATCH_TOKENS
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import text_model_name

ROBERTA_POSITION_OFFSET = 2  # position ids start at padding_idx + 1
MODEL_PY = "from reranker_server.onnx_model import TritonPythonModel  # noqa: F401\n"
# fp16 must stay close to fp32; beyond this the export fails rather than serve drifting scores.
FP16_MAX_ABS_DIFF = 5e-2


@dataclass
class EncoderExportOptions:
    precision: str = "fp32"  # fp32 | fp16
    max_batch_size: int = ENCODER_MAX_BATCH_SIZE
    instance_count: int = 1
    max_queue_delay_us: int = 2000
    max_batch_tokens: int = ONNX_CPU_MAX_BATCH_TOKENS  # per ORT run on CPU (docs/benchmarks.md)
    cpu_graph: str = "fused"  # fused | int8 | bf16 | plain (the embedded runner uses model.onnx)
    intra_op_threads: int = 0
    gpus: tuple[int, ...] = ()
    allow_pickle: bool = False  # accept *.bin-only checkpoints (--allow-pickle)


def encoder_manifest(
    checkpoint: Path, name: str, source: str, tokenizer, options: EncoderExportOptions
) -> ModelManifest:
    config = read_config(checkpoint)
    max_positions = int(config["max_position_embeddings"]) - ROBERTA_POSITION_OFFSET
    return ModelManifest(
        family=ENCODER,
        name=name,
        tokenizer=tokenizer,
        max_positions=max_positions,
        default_max_length=512,
        max_batch_size=options.max_batch_size,
        vocab_size=int(config["vocab_size"]),
        precision=options.precision,
        source=source,
        text_model=text_model_name(name),
    )


def _verify_fp16(fp32: Path, fp16: Path, manifest: ModelManifest, progress: Callable[[str], None]) -> float:
    """Compare fp16 against fp32 on sample sequences; return the max abs difference."""
    gen = np.random.default_rng(0)
    pad = manifest.tokenizer.pad_token_id if manifest.tokenizer.pad_token_id is not None else 1
    length = min(64, manifest.max_positions)
    ids = gen.integers(3, manifest.vocab_size, size=(8, length))
    ids[:, 0] = manifest.tokenizer.cls_token_id or 0
    mask = np.ones_like(ids)
    for row in range(1, 8):
        cut = length * row // 8
        ids[row, cut:] = pad
        mask[row, cut:] = 0
    diff = float(np.abs(onnx_scores(fp32, ids, mask) - onnx_scores(fp16, ids, mask)).max())
    progress(f"fp16 vs fp32 on 8 sample sequences: max abs score difference {diff:.2e}")
    if diff > FP16_MAX_ABS_DIFF:
        raise ExportError(f"fp16 export drifts {diff:.3g} from fp32 (limit {FP16_MAX_ABS_DIFF}); use fp32")
    return diff


CPU_GRAPHS = ("fused", "int8", "bf16", "plain")
CPU_GRAPH_FILE = "model.cpu.onnx"
OPENVINO_FILE = "model.xml"  # + model.bin; Triton's openvino backend loads this name by default


def write_cpu_graph(
    fp32_onnx: Path, version: Path, checkpoint: Path, graph: str, progress: Callable[[str], None]
) -> str:
    """The embedded runner's graph file: fused (exact), fused + int8 or OpenVINO IR (bf16),
    built from fp32."""
    if graph == "plain":
        return "model.onnx"
    if graph == "bf16":
        write_openvino_ir(fp32_onnx, version / OPENVINO_FILE)
        progress(f"      OpenVINO IR (fp32 weights, run in bf16): {OPENVINO_FILE}")
        support = bf16_support()
        if not support.native:
            progress(
                f"      note: this CPU has {support.describe()}; a server on it runs this variant in "
                "fp32 (bf16 needs AVX512-BF16 or AMX-BF16: AMD Zen 4+, Intel Cooper Lake+)"
            )
        return OPENVINO_FILE
    from export.ort_optimize import fuse_transformer, model_dims, quantize_int8

    heads, hidden = model_dims(read_config(checkpoint))
    target = version / CPU_GRAPH_FILE
    if graph == "fused":
        stats = fuse_transformer(fp32_onnx, target, num_heads=heads, hidden_size=hidden)
    else:
        with tempfile.TemporaryDirectory(prefix="fused-") as tmp:
            stats = fuse_transformer(fp32_onnx, Path(tmp) / "fused.onnx", num_heads=heads, hidden_size=hidden)
            quantize_int8(Path(tmp) / "fused.onnx", target)
    progress("      fused: " + ", ".join(f"{k} x{v}" for k, v in sorted(stats.items())))
    return CPU_GRAPH_FILE


def write_openvino_ir(onnx_path: Path, xml_path: Path) -> Path:
    """The ONNX graph as OpenVINO IR with fp32 weights (the precision is chosen when it is
    compiled on the serving CPU: bf16 where native, else fp32)."""
    import openvino as ov

    ov.save_model(ov.convert_model(str(onnx_path)), str(xml_path), compress_to_fp16=False)
    return xml_path


def cpu_precision(cpu_graph: str) -> str:
    """The OpenVINO inference precision of a CPU graph ("" for ONNX Runtime graphs)."""
    return "bf16" if cpu_graph == "bf16" else ""


def write_cpu_config(
    model_dir: Path,
    variant: str,
    template: str,
    manifest: ModelManifest,
    options: EncoderExportOptions,
    **values: object,
) -> Path:
    """configs/<variant>.pbtxt from `template`: the serving options every CPU config shares
    (batching, instances, threads, the manifest) plus the template's own `values`."""
    text = fill_template(
        template,
        {
            "name": manifest.name,
            "max_batch_size": options.max_batch_size,
            "max_queue_delay_us": options.max_queue_delay_us,
            "instance_count": options.instance_count,
            "intra_op_threads": options.intra_op_threads,
            "manifest": pbtxt_string(manifest.to_json()),
            **values,
        },
    )
    path = model_dir / "configs" / f"{variant}.pbtxt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_embedded_config(
    model_dir: Path, manifest: ModelManifest, options: EncoderExportOptions, onnx_file: str = "model.onnx"
) -> Path:
    """configs/embedded.pbtxt: the Python backend running ONNX Runtime on CPU."""
    return write_cpu_config(
        model_dir,
        "embedded",
        "python_onnx",
        manifest,
        options,
        onnx_file=onnx_file,
        inference_precision=cpu_precision(options.cpu_graph),
        max_batch_tokens=options.max_batch_tokens,
    )


def write_openvino_config(model_dir: Path, manifest: ModelManifest, options: EncoderExportOptions) -> Path:
    """configs/openvino.pbtxt: Triton's native openvino backend running 1/model.xml in bf16."""
    return write_cpu_config(model_dir, "openvino", "openvino", manifest, options, hint_bf16="YES")


def gpu_options(options: EncoderExportOptions) -> GpuOptions:
    """The GPU configs' options from the export options (empty gpus = every visible GPU)."""
    return GpuOptions(
        max_batch_size=options.max_batch_size,
        instance_count=options.instance_count,
        gpus=list(options.gpus) or None,
        max_queue_delay_us=options.max_queue_delay_us,
    )


def write_configs(
    model_dir: Path, manifest: ModelManifest, options: EncoderExportOptions, onnx_file: str = "model.onnx"
) -> list[Path]:
    """Every config of an encoder model directory: the embedded one and the GPU variants
    (config.pbtxt and configs/onnxruntime_trt.pbtxt), each checked before it is written."""
    written = [write_embedded_config(model_dir, manifest, options, onnx_file)]
    if options.cpu_graph == "bf16":
        written.append(write_openvino_config(model_dir, manifest, options))
    try:
        return written + write_gpu_configs(model_dir, manifest, gpu_options(options))
    except ValueError as exc:
        raise ExportError(str(exc)) from exc


def export_encoder(
    checkpoint: Path,
    model_dir: Path,
    *,
    name: str,
    source: str,
    options: EncoderExportOptions,
    progress: Callable[[str], None] = print,
) -> ModelManifest:
    """Export an XLM-R reranker checkpoint into `model_dir` (see the module docstring)."""
    if options.precision not in ("fp32", "fp16"):
        raise ExportError(
            f"precision {options.precision!r} is not supported for encoder models: fp32 or fp16"
        )
    if options.cpu_graph not in CPU_GRAPHS:
        raise ExportError(f"cpu graph {options.cpu_graph!r} is not supported: {', '.join(CPU_GRAPHS)}")
    require_ints(
        (
            ("max_batch_size", options.max_batch_size, 1),
            ("instance_count", options.instance_count, 1),
            ("max_queue_delay_us", options.max_queue_delay_us, 0),
            ("max_batch_tokens", options.max_batch_tokens, 1),
            ("intra_op_threads", options.intra_op_threads, 0),
        )
    )
    require_safetensors(checkpoint, options.allow_pickle)
    version = model_dir / "1"
    version.mkdir(parents=True, exist_ok=True)
    steps = 3 + (options.precision == "fp16") + (options.cpu_graph != "plain")
    step = iter(range(1, steps + 1))

    def stage(msg: str) -> None:
        progress(f"[{next(step)}/{steps}] {msg}")

    stage("tokenizer")
    tokenizer = copy_tokenizer(checkpoint, model_dir, source)
    manifest = encoder_manifest(checkpoint, name, source, tokenizer, options)
    stage("ONNX export (fp32)")
    detail = lambda m: progress("      " + m)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="fp32-") as tmp:
        fp32_path = version / "model.onnx" if options.precision == "fp32" else Path(tmp) / "model.onnx"
        export_encoder_onnx(checkpoint, fp32_path, progress=detail, allow_pickle=options.allow_pickle)
        if options.precision == "fp16":
            stage("fp16 conversion (LayerNorm, Softmax and reductions kept in fp32)")
            convert_to_fp16(fp32_path, version / "model.onnx")
            _verify_fp16(fp32_path, version / "model.onnx", manifest, progress)
        if options.cpu_graph != "plain":
            stage(f"CPU graph for the embedded server: {options.cpu_graph}")
        cpu_file = write_cpu_graph(fp32_path, version, checkpoint, options.cpu_graph, progress)
    stage("model code, configs and manifest")
    (version / "model.py").write_text(MODEL_PY)
    write_configs(model_dir, manifest, options, cpu_file)
    manifest.save(model_dir)
    return manifest
