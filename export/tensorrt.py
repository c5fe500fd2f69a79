"""Build `1/model.plan` (TensorRT engine) from an exported encoder's `1/model.onnx`, and write its
`configs/tensorrt_plan.pbtxt`.

Run it on the GPU node that will serve the engine, inside the Triton image (engines are specific
to the GPU model and the TensorRT version), e.g. with the compose stack's image:

    docker compose run --rm --entrypoint python3 -v $PWD/export:/opt/reranker/export \\
        -v $PWD/model_repository:/models triton -m export.tensorrt --model-dir /models/bge-reranker-v2-m3

    python -m export.tensorrt --model-dir DIR [--max-batch-size 64] [--max-length 8192]
        [--precision fp16|fp32] [--profile 1x1:32x256:64x512 ...] [--device 0]
        [--instances 1] [--gpus 0 1] [--builder auto|python|trtexec] [--dry-run]

fp16 keeps LayerNormalization and Softmax (and, for graphs exported without the fused op, the
reductions/pow/sqrt around them) in fp32. Each optimization profile must take max_batch_size
(Triton checks every profile an instance may use); `--max-length` caps the profile's sequence
length below the model's max_positions (memory: the engine is sized for the largest profile).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from export.config_check import check_config, parse_config
from export.gpu_configs import TRT_PLAN, GpuOptions, config_path, render_gpu_config, trt_profiles
from export.trt_profiles import TrtProfile
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import ENCODER_INPUTS

# ONNX op types kept in fp32 under --precision fp16 (overflow-prone in fp16; TensorRT #2564, #3101)
FP32_OPS = ("LayerNormalization", "Softmax")
FP32_DECOMPOSED_LN_OPS = ("ReduceMean", "Pow", "Sqrt")
TRTEXEC_CANDIDATES = ("trtexec", "/usr/src/tensorrt/bin/trtexec", "/opt/tensorrt/bin/trtexec")


class TensorRTBuildError(RuntimeError):
    """The engine could not be built or does not fit the model's contract."""


@dataclass
class BuildOptions:
    precision: str = "fp16"
    workspace_bytes: int = 8 << 30
    device: int = 0
    builder: str = "auto"  # auto | python | trtexec
    input_dtype: str = "auto"  # auto | int64 | int32 (auto: read from the engine / TRT version)
    timing_cache: str | None = None


def fp32_layer_names(onnx_path: Path | str) -> list[str]:
    """Names of the ONNX nodes whose TensorRT layers must stay fp32."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    ops = set(FP32_OPS)
    if not any(n.op_type == "LayerNormalization" for n in model.graph.node):
        ops |= set(FP32_DECOMPOSED_LN_OPS)
    return [n.name for n in model.graph.node if n.op_type in ops and n.name]


def find_trtexec() -> str | None:
    for candidate in TRTEXEC_CANDIDATES:
        path = shutil.which(candidate)
        if path:
            return path
    return None


def trtexec_command(
    trtexec: str,
    onnx_path: Path,
    plan_path: Path,
    profiles: Sequence[TrtProfile],
    options: BuildOptions,
    fp32_layers: Sequence[str],
) -> list[str]:
    """The trtexec invocation (one --min/opt/maxShapes triple per optimization profile)."""
    cmd = [
        trtexec,
        f"--onnx={onnx_path}",
        f"--saveEngine={plan_path}",
        f"--device={options.device}",
        f"--memPoolSize=workspace:{max(1, options.workspace_bytes >> 20)}M",
        "--skipInference",
    ]
    for p in profiles:
        cmd += [
            f"--minShapes={p.shapes('min')}",
            f"--optShapes={p.shapes('opt')}",
            f"--maxShapes={p.shapes('max')}",
        ]
    if options.precision == "fp16":
        cmd.append("--fp16")
        if fp32_layers:
            cmd += [
                "--precisionConstraints=obey",
                "--layerPrecisions=" + ",".join(f"{n}:fp32" for n in fp32_layers),
                "--layerOutputTypes=" + ",".join(f"{n}:fp32" for n in fp32_layers),
            ]
    if options.timing_cache:
        cmd.append(f"--timingCacheFile={options.timing_cache}")
    return cmd


def _build_python(
    onnx_path: Path,
    plan_path: Path,
    profiles: Sequence[TrtProfile],
    options: BuildOptions,
    fp32_layers: Sequence[str],
) -> dict:
    """Build with the `tensorrt` Python package; returns engine facts for the config."""
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", str(options.device))
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTBuildError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_bytes)
    kept = 0
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        wanted = set(fp32_layers)
        fp32_types = {trt.LayerType.SOFTMAX}
        if hasattr(trt.LayerType, "NORMALIZATION"):
            fp32_types.add(trt.LayerType.NORMALIZATION)
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            if (
                layer.type in fp32_types
                or layer.name in wanted
                or any(layer.name.startswith(w + "_") for w in wanted)
            ):
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                kept += 1
    for p in profiles:
        profile = builder.create_optimization_profile()
        for name in ENCODER_INPUTS:
            profile.set_shape(
                name, (p.min_batch, p.min_len), (p.opt_batch, p.opt_len), (p.max_batch, p.max_len)
            )
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTBuildError("TensorRT failed to build the engine (see the log above)")
    plan_path.write_bytes(bytes(serialized))
    engine = trt.Runtime(logger).deserialize_cuda_engine(bytes(serialized))
    dtypes = {str(engine.get_tensor_dtype(n)).split(".")[-1].lower() for n in ENCODER_INPUTS}
    return {"tensorrt": trt.__version__, "input_dtypes": sorted(dtypes), "fp32_layers": kept}


def _build_trtexec(
    trtexec: str,
    onnx_path: Path,
    plan_path: Path,
    profiles: Sequence[TrtProfile],
    options: BuildOptions,
    fp32_layers: Sequence[str],
) -> dict:
    cmd = trtexec_command(trtexec, onnx_path, plan_path, profiles, options, fp32_layers)
    print("running:", " ".join(cmd[:6]), "...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not plan_path.exists():
        raise TensorRTBuildError(
            f"trtexec failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
        )
    version = re.search(r"TensorRT v(\d+)", proc.stdout)
    major = int(version.group(1)) // 10000 if version else None
    return {
        "tensorrt": version.group(1) if version else "unknown",
        "input_dtypes": ["int64"] if (major or 10) >= 10 else ["int32"],
        "fp32_layers": len(fp32_layers) if options.precision == "fp16" else 0,
    }


def build_plan(
    model_dir: Path, gpu_options: GpuOptions, options: BuildOptions, *, dry_run: bool = False
) -> dict:
    """Build 1/model.plan and write configs/tensorrt_plan.pbtxt; returns what was done."""
    model_dir = Path(model_dir)
    manifest = ModelManifest.load(model_dir)
    onnx_path = model_dir / "1" / "model.onnx"
    if not onnx_path.exists():
        raise TensorRTBuildError(f"{onnx_path} not found: export the model first")
    if options.precision not in ("fp16", "fp32"):
        raise TensorRTBuildError(f"precision {options.precision!r}: fp16 or fp32")
    profiles = trt_profiles(manifest, gpu_options)
    layers = fp32_layer_names(onnx_path) if options.precision == "fp16" else []
    plan_path = model_dir / "1" / "model.plan"
    result = {
        "plan": str(plan_path),
        "profiles": [p.to_dict() for p in profiles],
        "precision": options.precision,
        "fp32_layer_names": len(layers),
    }
    builder = options.builder
    trtexec = find_trtexec()
    if builder == "auto":
        try:
            import tensorrt  # noqa: F401

            builder = "python"
        except ImportError:
            builder = "trtexec"
    result["builder"] = builder
    if dry_run:
        result["command"] = trtexec_command(
            trtexec or "trtexec", onnx_path, plan_path, profiles, options, layers
        )
        dtype = options.input_dtype if options.input_dtype != "auto" else "int64"
    else:
        start = time.monotonic()
        if builder == "python":
            facts = _build_python(onnx_path, plan_path, profiles, options, layers)
        elif trtexec:
            facts = _build_trtexec(trtexec, onnx_path, plan_path, profiles, options, layers)
        else:
            raise TensorRTBuildError(
                "neither the tensorrt Python package nor trtexec is available; "
                "run inside the Triton image (docker/Dockerfile)"
            )
        facts["build_s"] = round(time.monotonic() - start, 1)
        result.update(facts)
        if len(facts["input_dtypes"]) != 1:
            raise TensorRTBuildError(f"engine inputs have mixed types {facts['input_dtypes']}")
        dtype = options.input_dtype if options.input_dtype != "auto" else facts["input_dtypes"][0]
        (model_dir / "1" / "model.plan.json").write_text(json.dumps(result, indent=2) + "\n")
    text = render_gpu_config(
        manifest, TRT_PLAN, gpu_options.replace(trt_input_dtype=dtype, trt_profiles=profiles)
    )
    import onnx

    problems = check_config(
        parse_config(text), onnx_model=onnx.load(str(onnx_path), load_external_data=False)
    )
    if problems:
        raise TensorRTBuildError("tensorrt_plan config does not fit the model: " + "; ".join(problems))
    path = config_path(model_dir, TRT_PLAN)
    result["config"] = str(path)
    if dry_run:
        result["config_text"] = text
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return result


def parse_profile(text: str) -> TrtProfile:
    """`1x1:32x256:64x512` (min:opt:max as BATCHxLENGTH) -> TrtProfile."""
    try:
        dims = [tuple(int(v) for v in part.split("x")) for part in text.split(":")]
        (b0, l0), (b1, l1), (b2, l2) = dims
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"profile {text!r}: expected MINBxMINL:OPTBxOPTL:MAXBxMAXL") from exc
    try:
        return TrtProfile(b0, l0, b1, l1, b2, l2)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build a TensorRT plan for an exported encoder reranker")
    ap.add_argument("--model-dir", required=True, type=Path)
    ap.add_argument("--max-batch-size", type=int)
    ap.add_argument("--max-length", type=int, help="longest sequence (default: the model's max_positions)")
    ap.add_argument("--opt-batch", type=int)
    ap.add_argument("--opt-length", type=int)
    ap.add_argument(
        "--profile",
        type=parse_profile,
        action="append",
        help="explicit profile MINBxMINL:OPTBxOPTL:MAXBxMAXL (repeatable)",
    )
    ap.add_argument("--precision", choices=["fp16", "fp32"], default="fp16")
    ap.add_argument("--workspace-gib", type=float, default=8.0)
    ap.add_argument("--device", type=int, default=0, help="GPU that builds the engine")
    ap.add_argument("--builder", choices=["auto", "python", "trtexec"], default="auto")
    ap.add_argument("--input-dtype", choices=["auto", "int64", "int32"], default="auto")
    ap.add_argument("--timing-cache")
    ap.add_argument("--instances", type=int, default=1, help="model instances per GPU")
    ap.add_argument("--gpus", type=int, nargs="+", help="GPU indices for the instances (default: all)")
    ap.add_argument(
        "--max-queue-delay-us", "--queue-delay-us", type=int, default=2000, help="dynamic batching delay"
    )
    ap.add_argument("--no-warmup", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the build command and the config only")
    args = ap.parse_args(argv)
    gpu_options = GpuOptions(
        max_batch_size=args.max_batch_size,
        max_length=args.max_length,
        instance_count=args.instances,
        gpus=args.gpus,
        max_queue_delay_us=args.max_queue_delay_us,
        warmup=not args.no_warmup,
        trt_opt_batch=args.opt_batch,
        trt_opt_length=args.opt_length,
        trt_profiles=args.profile,
    )
    options = BuildOptions(
        precision=args.precision,
        workspace_bytes=int(args.workspace_gib * (1 << 30)),
        device=args.device,
        builder=args.builder,
        input_dtype=args.input_dtype,
        timing_cache=args.timing_cache,
    )
    try:
        result = build_plan(args.model_dir, gpu_options, options, dry_run=args.dry_run)
    except (TensorRTBuildError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    text = result.pop("config_text", None)
    print(json.dumps(result, indent=2))
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
