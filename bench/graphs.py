"""ONNX graph variants of the exported benchmark encoder (fused, int8 recipes, fp16), built once
beside the fp32 export by the project's own optimizer (export/ort_optimize.py)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnxruntime.transformers.float16 import convert_float_to_float16

from export import ort_optimize as oo
from export.onnx_export import save_onnx


def variant_path(fp32: Path, variant: str) -> Path:
    """Where the graph of `variant` lives: beside the fp32 export."""
    return fp32.parent / f"model.{variant}.onnx"


def build_variant(fp32: Path, variant: str, heads: int, hidden: int) -> Path:
    """Create (once) the ONNX file of a named variant next to the fp32 export."""
    if variant == "fp32":
        return fp32
    out = variant_path(fp32, variant)
    if out.exists():
        return out
    fused = variant_path(fp32, "fused")
    if variant != "int8-unfused" and not fused.exists():
        oo.fuse_transformer(fp32, fused, num_heads=heads, hidden_size=hidden)
    if variant == "fused":
        return fused
    if variant == "int8":  # the export's recipe: 7-bit per-channel weights, fp32 score head
        return oo.quantize_int8(fused, out)
    if variant == "int8-full":  # the former recipe: 8-bit per-tensor weights, head quantized too
        return oo.quantize_int8(fused, out, per_channel=False, reduce_range=False, keep_head_fp32=False)
    if variant == "int8-matmul":
        return oo.quantize_int8(fused, out, op_types=("MatMul",))
    if variant == "int8-unfused":
        return oo.quantize_int8(fp32, out, op_types=("MatMul",))
    if variant == "fp16":
        return convert_fp16(fused, out)
    raise ValueError(f"unknown variant {variant!r}")


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and compute with fp32 inputs/outputs (measured only: ONNX Runtime's x86 CPU
    kernels have no fp16 GEMM, so it is slower there, see docs/benchmarks.md)."""
    # The helper's default block list keeps ops without fp16 CPU kernels in fp32.
    save_onnx(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True), dst)
    return dst
