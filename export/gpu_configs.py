"""Render the GPU Triton configs of an encoder reranker from its manifest.

Three variants, one template each in export/templates/:

- ``onnxruntime_gpu``: the native ONNX Runtime backend on the CUDA execution provider
  (written as the model's ``config.pbtxt``: the default on GPU nodes);
- ``onnxruntime_trt``: the same ONNX file through ORT's TensorRT execution provider
  (fp16 with LayerNorm kept fp32, engine cache, one explicit optimization profile);
- ``tensorrt_plan``: a TensorRT engine ``1/model.plan`` built by ``export/tensorrt.py``.

``python -m export`` writes the first two; ``python -m export.tensorrt`` (``make trt-plan``)
writes the third next to the plan it builds. Variants other than the default go to
``configs/<variant>.pbtxt``; the server picks one with ``--model-config-name=<variant>`` (models
without that file fall back to ``config.pbtxt``). The checks of a rendered config are in
export/config_check.py.

The copy of the manifest embedded in each config carries that config's ``max_batch_size``, so
a client that splits requests by the manifest never sends more than the config accepts.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from export.config_check import check_config, parse_config
from export.fill_template import fill_template, pbtxt_string
from export.trt_profiles import TrtProfile
from reranker_core.families import ENCODER
from reranker_core.manifest import ModelManifest

ORT_GPU = "onnxruntime_gpu"
ORT_TRT = "onnxruntime_trt"
TRT_PLAN = "tensorrt_plan"
VARIANTS = (ORT_GPU, ORT_TRT, TRT_PLAN)
EXPORTED_VARIANTS = (ORT_GPU, ORT_TRT)  # written by `python -m export`; the plan's config
DEFAULT_VARIANT = ORT_GPU  # comes with the plan (python -m export.tensorrt)
DEFAULT_TRT_CACHE_ROOT = "/var/cache/reranker-trt"
TRITON_DTYPES = {"int64": "TYPE_INT64", "int32": "TYPE_INT32"}


@dataclass
class GpuOptions:
    """Deployment knobs for the GPU configs; None means "take it from the manifest"."""

    max_batch_size: int | None = None  # pairs per request (and per batched execution)
    max_length: int | None = None  # longest sequence the TRT profile covers
    instance_count: int = 1  # model instances per listed GPU
    gpus: list[int] | None = None  # GPU indices as the server sees them; None = all
    max_queue_delay_us: int = 2000  # dynamic batcher's max_queue_delay_microseconds
    preferred_batch_sizes: list[int] = field(default_factory=list)
    warmup: bool = True  # model_warmup (model READY only after it ran)
    warmup_length: int = 16
    # TensorRT (EP and plan)
    trt_precision: str = "FP16"  # FP16 (LayerNorm kept fp32) or FP32
    trt_workspace_bytes: int = 4 << 30
    trt_engine_cache: bool = True
    trt_engine_cache_path: str | None = None  # default /var/cache/reranker-trt/<name>
    trt_opt_batch: int | None = None  # default max_batch_size // 2 (at least 1)
    trt_opt_length: int | None = None  # default min(256, max length)
    trt_input_dtype: str = "int64"  # engine input type (TensorRT 10 keeps INT64)
    trt_profiles: list[TrtProfile] | None = None  # plan only; default: one from the above

    def replace(self, **changes: Any) -> GpuOptions:
        return dataclasses.replace(self, **changes)


def effective_max_batch(manifest: ModelManifest, options: GpuOptions) -> int:
    value = options.max_batch_size or manifest.max_batch_size
    if value < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {value}")
    return value


def effective_max_length(manifest: ModelManifest, options: GpuOptions) -> int:
    value = options.max_length or manifest.max_positions
    if not 1 <= value <= manifest.max_positions:
        raise ValueError(
            f"max_length {value} outside 1..{manifest.max_positions} (the model's max_positions)"
        )
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
            raise ValueError(
                f"TensorRT profile {i} max batch {p.max_batch} < max_batch_size "
                f"{max_batch}; Triton rejects such an engine"
            )
        if p.max_len > manifest.max_positions:
            raise ValueError(
                f"TensorRT profile {i} max length {p.max_len} > the model's "
                f"max_positions {manifest.max_positions}"
            )
    if max(p.max_len for p in profiles) < max_len:
        raise ValueError(f"no TensorRT profile covers max_length {max_len}")
    return profiles


def embedded_manifest(manifest: ModelManifest, max_batch: int) -> str:
    """The manifest as a quoted pbtxt string, with this config's max_batch_size."""
    data = json.loads(manifest.to_json())
    data["max_batch_size"] = max_batch
    return pbtxt_string(json.dumps(data, sort_keys=True))


def validate_options(options: GpuOptions, max_batch: int) -> None:
    """Raise ValueError naming the first option that no Triton config can take."""
    if options.instance_count < 1:
        raise ValueError(f"instance_count must be >= 1, got {options.instance_count}")
    if options.gpus is not None:
        gpus = list(options.gpus)
        if not gpus or any(g < 0 for g in gpus) or len(set(gpus)) != len(gpus):
            raise ValueError(f"gpus must be distinct non-negative indices, got {gpus}")
    if options.max_queue_delay_us < 0:
        raise ValueError(f"max_queue_delay_us must be >= 0, got {options.max_queue_delay_us}")
    preferred = sorted(set(options.preferred_batch_sizes))
    if any(not 1 <= b <= max_batch for b in preferred):
        raise ValueError(f"preferred batch sizes {preferred} must lie in 1..{max_batch}")


def _precision(options: GpuOptions) -> str:
    precision = options.trt_precision.upper()
    if precision not in ("FP16", "FP32"):
        raise ValueError(f"trt_precision must be FP16 or FP32, got {options.trt_precision!r}")
    return precision


def _check_encoder(manifest: ModelManifest) -> None:
    if manifest.family != ENCODER:
        raise ValueError(
            f"GPU ONNX/TensorRT configs are for encoder rerankers; {manifest.name} "
            f"is {manifest.family!r} (its GPU config is the Python-backend LLM one)"
        )


def _common_values(manifest: ModelManifest, options: GpuOptions) -> dict[str, Any]:
    """The placeholders every GPU template shares (export/templates/README.md)."""
    max_batch = effective_max_batch(manifest, options)
    validate_options(options, max_batch)
    return {
        "name": manifest.name,
        "max_batch_size": max_batch,
        "instance_count": options.instance_count,
        "gpus": list(options.gpus or []),
        "preferred_batch_sizes": sorted(set(options.preferred_batch_sizes)),
        "max_queue_delay_us": options.max_queue_delay_us,
        "warmup": options.warmup,
        "warmup_length": min(options.warmup_length, effective_max_length(manifest, options)),
        "manifest": embedded_manifest(manifest, max_batch),
    }


def render_gpu_config(manifest: ModelManifest, variant: str, options: GpuOptions | None = None) -> str:
    """The config.pbtxt text of one GPU variant for this manifest."""
    options = options or GpuOptions()
    _check_encoder(manifest)
    if variant not in VARIANTS:
        raise ValueError(f"unknown GPU config variant {variant!r}; known: {', '.join(VARIANTS)}")
    values = _common_values(manifest, options)
    if variant == ORT_TRT:
        profile = default_profile(manifest, options)
        values.update(
            {
                "precision_mode": _precision(options),
                "workspace_bytes": int(options.trt_workspace_bytes),
                "engine_cache": options.trt_engine_cache,
                "engine_cache_path": (
                    options.trt_engine_cache_path or f"{DEFAULT_TRT_CACHE_ROOT}/{manifest.name}"
                ),
                "profile_min_shapes": profile.shapes("min"),
                "profile_opt_shapes": profile.shapes("opt"),
                "profile_max_shapes": profile.shapes("max"),
            }
        )
    elif variant == TRT_PLAN:
        profiles = trt_profiles(manifest, options)
        dtype = TRITON_DTYPES.get(options.trt_input_dtype)
        if dtype is None:
            raise ValueError(f"trt_input_dtype must be one of {sorted(TRITON_DTYPES)}")
        # Several profiles: instance group i uses them all, named by index (Triton's "profile").
        names = [pbtxt_string(str(i)) for i in range(len(profiles))] if len(profiles) > 1 else []
        values.update(
            {
                "input_data_type": dtype,
                "profiles": names,
                "profiles_json": pbtxt_string(json.dumps([p.to_dict() for p in profiles])),
            }
        )
    return fill_template(variant, values)


def render_gpu_configs(
    manifest: ModelManifest, options: GpuOptions | None = None, variants: Iterable[str] = VARIANTS
) -> dict[str, str]:
    """{variant: config text} for the requested variants."""
    return {v: render_gpu_config(manifest, v, options) for v in variants}


def config_path(model_dir: Path | str, variant: str) -> Path:
    """Where a variant lives: config.pbtxt for the default one, configs/<variant>.pbtxt else."""
    model_dir = Path(model_dir)
    return (
        model_dir / "config.pbtxt"
        if variant == DEFAULT_VARIANT
        else model_dir / "configs" / f"{variant}.pbtxt"
    )


def write_gpu_configs(
    model_dir: Path | str,
    manifest: ModelManifest,
    options: GpuOptions | None = None,
    variants: Iterable[str] = EXPORTED_VARIANTS,
) -> list[Path]:
    """Render, check (export/config_check.py) and write the variants into a model directory;
    ValueError naming the problems, before anything is written, when one does not check out."""
    rendered = render_gpu_configs(manifest, options, variants)
    for variant, text in rendered.items():
        problems = check_config(parse_config(text))
        if problems:
            raise ValueError(f"{variant} config does not fit the model: " + "; ".join(problems))
    written = []
    for variant, text in rendered.items():
        path = config_path(model_dir, variant)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
