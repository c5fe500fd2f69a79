"""`make demo`: export a reranker, serve it on the embedded Triton server, score the tutorial's
pairs through the client. Without a reachable hub it says so and uses a tiny local model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from export.__main__ import default_name
from export.__main__ import main as export_main
from export.checkpoint import resolve_checkpoint
from export.errors import ExportError
from export.tiny import build_tiny
from reranker_core.families import ENCODER, GEMMA, GEMMA2_LIGHTWEIGHT, MINICPM_LAYERWISE
from reranker_core.manifest import LLMSettings

CACHE = Path(".cache") / "demo-checkpoints"  # LLM model directories link to these weights

TUTORIAL_PAIRS = [
    ["What is the capital of France?", "Paris is the capital of France."],
    ["What is the capital of France?", "The population of China is over 1.4 billion people."],
    ["What is the population of China?", "Paris is the capital of France."],
    ["What is the population of China?", "The population of China is over 1.4 billion people."],
]
# The tutorial's arguments per family for the real checkpoints (40-layer MiniCPM, 42-layer Gemma2).
SEED_ARGUMENTS = {
    ENCODER: {},
    GEMMA: {},
    MINICPM_LAYERWISE: {"cutoff_layers": [28]},
    GEMMA2_LIGHTWEIGHT: {"cutoff_layers": [28], "compress_ratio": 2, "compress_layers": [24, 40]},
}
REAL_DEPTH = {MINICPM_LAYERWISE: 40, GEMMA2_LIGHTWEIGHT: 42}


def family_from_name(model: str) -> str:
    name = model.lower()
    if "lightweight" in name:
        return GEMMA2_LIGHTWEIGHT
    if "layerwise" in name or "minicpm" in name:
        return MINICPM_LAYERWISE
    if "gemma" in name:
        return GEMMA
    return ENCODER


def scaled_arguments(family: str, manifest_llm: LLMSettings | None) -> dict[str, Any]:
    """The seed's layer arguments, scaled from the real model's depth to this checkpoint's."""
    args = json.loads(json.dumps(SEED_ARGUMENTS[family]))
    if manifest_llm is None:  # encoder models: no layer arguments
        return args
    layers = manifest_llm.num_hidden_layers
    real = REAL_DEPTH.get(family)
    if not args or not layers or layers == real:
        return args
    allowed = manifest_llm.cutoff_layers or list(range(1, layers + 1))

    def nearest(layer: int) -> int:
        target = layer * layers / real
        return min(allowed, key=lambda a: (abs(a - target), a))

    args["cutoff_layers"] = [nearest(c) for c in args["cutoff_layers"]]
    if "compress_layers" in args:
        args["compress_layers"] = sorted({round(c * layers / real) for c in args["compress_layers"]})
    return args


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="BAAI/bge-reranker-v2-m3")
    p.add_argument("--repository", default="model_repository")
    p.add_argument("--http-port", type=int, default=8000)
    p.add_argument("--grpc-port", type=int, default=8001)
    p.add_argument("--metrics-port", type=int, default=8002)
    args = p.parse_args(argv)

    name = default_name(args.model)
    source = args.model
    tiny = False
    try:
        resolve_checkpoint(args.model)
    except ExportError as exc:
        family = family_from_name(args.model)
        print(
            f"NOTICE: {exc}. Using a tiny locally built {family} model of the same architecture "
            "instead: its scores are MEANINGLESS (random weights).",
            flush=True,
        )
        source = str(build_tiny(family, (CACHE / f"{name}-tiny").resolve()))
        name = f"{name}-tiny"
        tiny = True
    code = export_main(["--model", source, "--name", name, "--repository", args.repository, "--force"])
    if code != 0:
        return code

    from reranker_client import RerankerClient
    from reranker_server.embedded import EmbeddedTritonServer

    log = Path(args.repository) / f".{name}-server.log"
    print(f"starting the embedded Triton server on {args.repository} (log: {log}) ...", flush=True)
    from reranker_server.embedded import ServerError

    # Only the demo's model is loaded: other models in the repository cannot hold the demo up.
    server = EmbeddedTritonServer(
        args.repository,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_file=log,
        extra_args=("--model-control-mode=explicit", f"--load-model={name}"),
    )
    try:
        server.start(timeout=600)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with server:
        with RerankerClient(server.grpc_url, name, "grpc") as client:
            family = client.manifest.family
            extra = scaled_arguments(family, client.manifest.llm)
            shown = ", ".join(f"{k}={v}" for k, v in extra.items())
            print(f"\nmodel {name} ({family}{', ' + shown if shown else ''}) via gRPC {server.grpc_url}")
            scores = client.compute_score(TUTORIAL_PAIRS, **extra)
            normalized = client.compute_score(TUTORIAL_PAIRS, normalize=True, **extra)
            for (q, passage), s, n in zip(TUTORIAL_PAIRS, scores, normalized):
                print(f"  {s:+9.4f}  (sigmoid {n:.4f})  {q!r} / {passage!r}")
            best = client.rerank(
                TUTORIAL_PAIRS[0][0], [pp for _, pp in TUTORIAL_PAIRS[:2]], top_n=1, **extra
            )[0]
            print(f"  rerank({TUTORIAL_PAIRS[0][0]!r}) -> best passage #{best.index}: {best.passage!r}")
    if tiny:
        print("\n(tiny random model: the scores above only show the pipeline works, not relevance)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
