"""CPU speed-ups for an exported encoder reranker (`1/model.onnx`, XLM-R sequence classification).

- `fuse_transformer`: ONNX Runtime's transformer fusions (Attention, SkipLayerNormalization,
  BiasGelu) for the "bert" model type; scores stay equal to the unfused model (fp32, < 1e-5).
- `quantize_int8`: dynamic int8 quantization of the encoder's MatMul and fused-Attention weights
  (u8 activations x s8 weights). Opt-in: scores drift (measured by
  bench/ort_variants.py and reported in docs/benchmarks.md). Built so that its scores do not
  depend on the CPU's int8 kernels (see `quantize_int8`).

The runner's session options are reranker_server.encoder_scorer.session_options.

Usage: `python -m export.ort_optimize MODEL.onnx OUT.onnx --fuse [--int8] [--config config.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnx

# Ops whose weights int8 quantization touches. With the fused graph, "Attention" holds the QKV
# projection (a quarter of the encoder's FLOPs); quantizing it too (QAttention) roughly doubled
# int8 throughput over MatMul-only on this CPU (docs/benchmarks.md).
INT8_OP_TYPES = ("MatMul", "Attention")
# Weights are quantized to 7 bits ([-64, 64]): MLAS's u8 x s8 kernels on x86 CPUs without VNNI
# (AVX2, AVX-512F/BW) add each two adjacent u8*s8 products in a saturating int16 (vpmaddubsw);
# 255 * 64 * 2 = 32640 cannot overflow it, so every CPU computes the same int32 sums.
INT8_WEIGHT_LIMIT = 64
INT16_MAX = 32767
# Ops between the encoder's last normalisation and the score: the classification head. It is
# kept in fp32: its tanh input is quantized around zero point 128 and its one output column
# spans the full weight range, which made it the op that saturated most (docs/benchmarks.md).
HEAD_BOUNDARY_OPS = {"SkipLayerNormalization", "LayerNormalization", "Attention"}


class OptimizeError(ValueError):
    """The model or its configuration cannot be optimised as asked."""


def model_dims(config: os.PathLike | str | dict) -> tuple[int, int]:
    """(num_attention_heads, hidden_size) from a Hugging Face config.json (path or dict)."""
    cfg = config if isinstance(config, dict) else json.loads(Path(config).read_text())
    try:
        heads, hidden = int(cfg["num_attention_heads"]), int(cfg["hidden_size"])
    except KeyError as exc:
        raise OptimizeError(f"config has no {exc.args[0]!r}: not a transformer encoder config") from exc
    if heads <= 0 or hidden % heads:
        raise OptimizeError(f"hidden_size {hidden} is not a multiple of num_attention_heads {heads}")
    return heads, hidden


def _save(model: onnx.ModelProto, dst: Path) -> Path:
    """Save like the exporter does (external data file when over the protobuf limit)."""
    from export.onnx_export import save_onnx

    save_onnx(model, dst)
    return dst


def fuse_transformer(
    src: os.PathLike | str, dst: os.PathLike | str, *, num_heads: int, hidden_size: int
) -> dict[str, int]:
    """Fuse attention / LayerNorm / GELU subgraphs of an XLM-R encoder; returns fused-op counts.

    The attention mask stays a raw 2D mask (not the "mask index" form), so left padding or any
    other mask layout keeps working exactly like the unfused graph.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.use_raw_attention_mask(True)
    # Position ids come from a cumsum over the mask (RoBERTa), which EmbedLayerNormalization
    # does not reproduce; keep the embeddings unfused.
    options.enable_embed_layer_norm = False
    options.enable_gelu_approximation = False  # exact erf GELU only: no score change
    optimized = optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        optimization_options=options,
        opt_level=0,
        use_gpu=False,
    )
    stats = {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}
    if not stats.get("Attention"):
        raise OptimizeError("no attention subgraph was fused: is this an XLM-R/BERT encoder export?")
    model = optimized.model
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    _save(model, Path(dst))
    return stats


def head_nodes(model: onnx.ModelProto, output: str = "scores") -> set[str]:
    """Names of the nodes between the encoder's last normalisation/attention and `output`."""
    producer = {out: node for node in model.graph.node for out in node.output}
    head: set[str] = set()
    todo = [output]
    while todo:
        node = producer.get(todo.pop())
        if node is None or node.name in head or node.op_type in HEAD_BOUNDARY_OPS:
            continue
        head.add(node.name)
        todo.extend(node.input)
    return head


def quantize_int8(
    src: os.PathLike | str,
    dst: os.PathLike | str,
    *,
    per_channel: bool = True,
    reduce_range: bool = True,
    keep_head_fp32: bool = True,
    op_types: tuple[str, ...] = INT8_OP_TYPES,
) -> Path:
    """Dynamic int8 quantization of constant-weight MatMuls (activations quantized per call).

    Defaults give scores that do not depend on the CPU: 7-bit weights (`reduce_range`, see
    INT8_WEIGHT_LIMIT), per output channel (recovers the bit lost to reduce_range), and the
    classification head kept in fp32. `reduce_range=False` saturates on CPUs without VNNI
    (docs/benchmarks.md: correlation with fp32 0.84 on an AVX2-only CPU, 0.996 with VNNI), so it
    is only for comparisons.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(src))
    nodes = None  # every op of op_types, and the quantizer turns Gemm heads into MatMuls too
    if keep_head_fp32:
        head = head_nodes(model)
        nodes = [n.name for n in model.graph.node if n.op_type in op_types and n.name not in head]
    # A ModelProto skips quantize_dynamic's ONNX shape inference, which rejects the fused
    # com.microsoft ops (Attention, SkipLayerNormalization).
    quantize_dynamic(
        model,
        str(dst),
        op_types_to_quantize=list(op_types),
        nodes_to_quantize=nodes,
        per_channel=per_channel,
        reduce_range=reduce_range,
        weight_type=QuantType.QInt8,
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return dst


INT8_OPS = {"DynamicQuantizeMatMul": 1, "MatMulInteger": 1, "QAttention": 1}  # op -> weight input


def int8_weight_ranges(path: os.PathLike | str) -> dict[str, int]:
    """{node name: largest |weight|} of every int8 weight multiplied by u8 activations."""
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    ranges = {}
    for node in model.graph.node:
        slot = INT8_OPS.get(node.op_type)
        if slot is not None and node.input[slot] in inits:
            weights = numpy_helper.to_array(inits[node.input[slot]]).astype(np.int32)
            ranges[node.name] = int(np.abs(weights).max())
    return ranges


def int16_pair_safe(path: os.PathLike | str) -> bool:
    """True when no two u8 x s8 products can overflow int16 (scores are CPU-independent)."""
    ranges = int8_weight_ranges(path)
    return bool(ranges) and max(ranges.values()) * 255 * 2 <= INT16_MAX


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("src")
    parser.add_argument("dst")
    parser.add_argument("--config", help="config.json (default: next to src, or its parent's)")
    parser.add_argument("--fuse", action="store_true", help="transformer fusion (fp32, exact)")
    parser.add_argument("--int8", action="store_true", help="dynamic int8 MatMul quantization")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor")
    args = parser.parse_args(argv)
    src, dst = Path(args.src), Path(args.dst)
    if not (args.fuse or args.int8):
        parser.error("nothing to do: pass --fuse and/or --int8")
    current = src
    if args.fuse:
        cfg = (
            Path(args.config)
            if args.config
            else next(
                (p for p in (src.parent / "config.json", src.parent.parent / "config.json") if p.exists()),
                None,
            )
        )
        if cfg is None:
            parser.error("no config.json found; pass --config")
        heads, hidden = model_dims(cfg)
        fused = dst if not args.int8 else dst.with_name(dst.stem + ".fused.onnx")
        print(fuse_transformer(current, fused, num_heads=heads, hidden_size=hidden))
        current = fused
    if args.int8:
        quantize_int8(current, dst, per_channel=not args.per_tensor)
        if current != src:
            current.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
