"""`python -m export --model <hub id or dir> --name <name>`: write a Triton model directory."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from pathlib import Path

from export.checkpoint import read_config, resolve_checkpoint
from export.detect import detect_family
from export.errors import ExportError
from export.text_export import export_text_model, text_model_dir
from reranker_core.families import ENCODER
from reranker_core.limits import ENCODER_MAX_BATCH_SIZE, LLM_MAX_BATCH_SIZE


def default_name(model: str) -> str:
    """bge-reranker-v2-m3 for BAAI/bge-reranker-v2-m3; Triton-safe characters only."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", Path(model.rstrip("/")).name).lower() or "reranker"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m export", description=__doc__)
    p.add_argument(
        "--model", required=True, help="hub id (e.g. BAAI/bge-reranker-v2-m3) or local checkpoint dir"
    )
    p.add_argument("--name", help="served model name (default: the checkpoint's name)")
    p.add_argument("--repository", default="model_repository", help="Triton model repository")
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16"],
        default="fp32",
        help="encoder models: ONNX precision (fp16 keeps LayerNorm/Softmax in fp32)",
    )
    p.add_argument(
        "--cpu-graph",
        choices=["fused", "int8", "bf16", "plain"],
        default="fused",
        help="encoder models: graph of the embedded CPU server: ORT-fused fp32 (exact, "
        "default), fused + dynamic int8 (faster, reorders close scores: opt-in), OpenVINO bf16 "
        "(about 2x fp32 on CPUs with AVX512-BF16/AMX-BF16; fp32 elsewhere), or model.onnx as is",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16"],
        default=None,
        help="LLM rerankers: GPU compute dtype; the embedded CPU config runs float32, or bfloat16 "
        "with --dtype bfloat16 (float32 on CPUs without AVX512-BF16/AMX-BF16)",
    )
    p.add_argument("--max-batch-size", type=int, default=None, help="pairs per request")
    p.add_argument("--instance-count", type=int, default=1, help="model instances (per GPU on GPU nodes)")
    p.add_argument("--gpus", default="", help="comma-separated GPU ids for the GPU config (default: all)")
    p.add_argument("--max-queue-delay-us", type=int, default=2000, help="dynamic batching delay")
    p.add_argument(
        "--max-batch-tokens",
        type=int,
        default=None,
        help="padded tokens (rows x longest row) per forward pass of the Python-backend "
        "runners (default: encoder 1024; LLM 16384 on GPU, 4096 on CPU)",
    )
    p.add_argument(
        "--weights",
        choices=["link", "copy"],
        default="link",
        help="LLM rerankers: symlink or copy the safetensors weights into the model dir",
    )
    p.add_argument("--force", action="store_true", help="replace an existing model directory")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="encoder models: accept a checkpoint that has only pickle (*.bin) weights "
        "(loaded with torch.load(weights_only=True)); refused by default",
    )
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> Path:
    start = time.monotonic()
    print(f"resolving {args.model} ...", flush=True)
    checkpoint = resolve_checkpoint(args.model)
    # The manifest's source: the hub id, or the local checkpoint's absolute path (never shown by
    # the rerank API, read by clients looking for the tokenizer on this machine).
    source = str(checkpoint) if Path(args.model).expanduser().exists() else args.model
    family = detect_family(read_config(checkpoint))
    name = args.name or default_name(args.model)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ExportError(f"invalid model name {name!r}: use letters, digits, '.', '_' and '-'")
    model_dir = Path(args.repository) / name
    text_dir = text_model_dir(model_dir)
    for existing in (model_dir, text_dir):
        if existing.exists():
            if not args.force:
                raise ExportError(f"{existing} already exists; pass --force to replace it")
            shutil.rmtree(existing)
    gpus = tuple(int(g) for g in args.gpus.split(",") if g.strip())
    print(f"exporting {family} reranker {checkpoint} -> {model_dir}", flush=True)
    progress = lambda msg: print(msg, flush=True)  # noqa: E731
    try:
        if family == ENCODER:
            from export.encoder_export import EncoderExportOptions, export_encoder

            options = EncoderExportOptions(
                precision=args.precision,
                cpu_graph=args.cpu_graph,
                max_batch_size=args.max_batch_size or ENCODER_MAX_BATCH_SIZE,
                instance_count=args.instance_count,
                max_queue_delay_us=args.max_queue_delay_us,
                gpus=gpus,
                allow_pickle=args.allow_pickle,
            )
            if args.max_batch_tokens is not None:
                options.max_batch_tokens = args.max_batch_tokens
            export_encoder(
                checkpoint, model_dir, name=name, source=source, options=options, progress=progress
            )
        else:
            from export.llm_export import export_llm

            export_llm(
                checkpoint,
                model_dir,
                name=name,
                family=family,
                dtype=args.dtype or "float16",
                weights=args.weights,
                max_batch_size=args.max_batch_size or LLM_MAX_BATCH_SIZE,
                instance_count=args.instance_count,
                gpus=gpus,
                max_queue_delay_us=args.max_queue_delay_us,
                source=source,
                max_batch_tokens=args.max_batch_tokens,
            )
        export_text_model(model_dir)
    except BaseException:
        for written in (model_dir, text_dir):  # never leave a half-written model behind
            shutil.rmtree(written, ignore_errors=True)
        raise
    print(
        f"done in {time.monotonic() - start:.1f}s: {model_dir} (token ids; the Python SDK) and "
        f"{text_dir} (text in, scores out; any language)",
        flush=True,
    )
    return model_dir


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        run(args)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
