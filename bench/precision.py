"""Section "precision" of `make bench`: the encoder's CPU graphs fp32 (ORT fused) vs bf16
(OpenVINO) vs int8 (ORT dynamic int8), side by side in one run.

    python -m bench.precision [--quick] [--rounds 3] [--skip-quality] [--skip-speed] [--skip-served]
                              [--llm [--llm-layers N] [--llm-rounds N] [--llm-profile bfloat16]]
                              [--gemma-seeds 13,14]
                              [--out bench/results/precision.json]

Quality: the trained tiny XLM-R (export/tiny/trained.py) exported with each graph and scored by
the runner's own scorer (reranker_server.encoder_scorer) on 10 held-out queries x 30 passages
of the synthetic relevance task; each variant against fp32 (export/precision_agreement.py).
On a CPU with native bf16, also the trained tiny Gemma exported --dtype bfloat16, its runner's
scorer in bfloat16 against float32 (`llm_quality`).
Speed: a random-weight model of the bge-reranker-base shape (bench/models.py; speed does not
depend on weight values), 1 query x 100 passages of ~200 tokens and 500 mixed-length pairs
(16..256 tokens), each variant timed in alternating rounds (this machine may be shared: the
median of the rounds is reported with the load average), in-process through the runner's scorer
and served (bench/precision_served.py: one embedded Triton server, the SDK client's token path
and the text model).
LLM (--llm, bench/llm_precision.py): the Gemma-2B shape exported --dtype float32 vs bfloat16,
served by one embedded Triton server and called through the client, in alternating rounds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from bench import llm_precision, precision_served
from bench.common import BASE, CACHE, QUICK, machine_info
from bench.models import build_encoder_checkpoint
from bench.result_file import write_result
from bench.workloads import Workload, encode_encoder_pairs, mixed_pairs, rerank_1x100
from export.precision_agreement import Agreement, agreement
from export.tiny import relevance_task
from export.tiny.trained import trained_encoder_checkpoint
from reranker_core.cpu_features import bf16_support
from reranker_core.encoding import encode_pairs
from reranker_core.manifest import ModelManifest
from reranker_server.encoder_scorer import EncoderScorer
from reranker_server.token_requests import TokenRows

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
GRAPHS = {"fp32": "fused", "bf16": "bf16", "int8": "int8"}  # variant -> --cpu-graph
GRAPH_FILES = {"fused": "model.cpu.onnx", "int8": "model.cpu.onnx", "bf16": "model.xml"}
QUALITY_SEED = 5000  # held out: training draws come from seeds 11 and 12
QUALITY_SHAPE = (10, 30)  # queries, passages per query


def export_variant(checkpoint: Path, root: Path, variant: str) -> Path:
    """`python -m export --cpu-graph <graph>` of `checkpoint` into `root/<variant>` (once)."""
    from export.__main__ import main as export_main

    model_dir = root / variant
    graph = GRAPHS[variant]
    if not (model_dir / "1" / GRAPH_FILES[graph]).exists():
        args = ["--model", str(checkpoint), "--name", variant, "--repository", str(root)]
        code = export_main([*args, "--force", "--cpu-graph", graph])
        if code != 0:
            raise RuntimeError(f"export of the {variant} variant failed with exit code {code}")
    return model_dir


def variant_scorer(model_dir: Path, variant: str, intra_op_threads: int = 0) -> EncoderScorer:
    """The served runner's scorer for an exported variant (its CPU graph, its engine)."""
    graph = GRAPHS[variant]
    manifest = ModelManifest.load(model_dir)
    return EncoderScorer.from_file(
        model_dir / "1" / GRAPH_FILES[graph],
        pad_id=manifest.pad_id,
        intra_op_threads=intra_op_threads,
        inference_precision="bf16" if graph == "bf16" else "fp32",
    )


def score_pairs(model_dir: Path, scorer: EncoderScorer, pairs: list[tuple[str, str]]) -> np.ndarray:
    """Scores of `pairs`, encoded as the client encodes them (reranker_core.encoding)."""
    from tokenizers import Tokenizer

    manifest = ModelManifest.load(model_dir)
    tok = Tokenizer.from_file(str(model_dir / manifest.tokenizer.file))
    encoded = encode_pairs(tok, manifest, pairs, max_length=512, query_max_length=384)
    rows = [np.asarray(e.input_ids, dtype=np.int64) for e in encoded]
    return scorer.score([TokenRows(rows)])[0][:, 0]


def quality(root: Path, variants: list[str]) -> dict[str, Agreement]:
    """Each variant against fp32 on the trained fixture's held-out queries."""
    checkpoint = trained_encoder_checkpoint()
    queries = relevance_task.evaluation_set(QUALITY_SEED, *QUALITY_SHAPE)
    pairs = [p for q in queries for p in q.pairs()]
    groups = [i for i, q in enumerate(queries) for _ in q.passages]
    scores = {}
    for v in ["fp32", *[v for v in variants if v != "fp32"]]:  # one export per fixture version
        model_dir = export_variant(checkpoint, root / checkpoint.name, v)
        scores[v] = score_pairs(model_dir, variant_scorer(model_dir, v), pairs)
    return {v: agreement(scores["fp32"], scores[v], groups) for v in variants if v != "fp32"}


def llm_scores(model_dir: Path, pairs: list[tuple[str, str]], dtype: str) -> np.ndarray:
    """Scores of an exported decoder reranker's pairs with the runner's scorer at `dtype`
    (CPU), encoded as the client encodes them."""
    import torch
    from tokenizers import Tokenizer

    from reranker_core.packing import pad_rows

    manifest, scorer = llm_precision.cpu_scorer(model_dir, dtype)
    tok = Tokenizer.from_file(str(model_dir / manifest.tokenizer.file))
    encoded = encode_pairs(tok, manifest, pairs, max_length=512, query_max_length=384)
    out = []
    for start in range(0, len(encoded), 32):
        ids, mask = pad_rows([np.asarray(e.input_ids) for e in encoded[start : start + 32]], manifest.pad_id)
        with torch.no_grad():
            out.append(scorer.score(torch.from_numpy(ids), torch.from_numpy(mask))[:, 0].numpy())
    return np.concatenate(out)


def llm_quality(root: Path, seed: int | None = None) -> Agreement:
    """bfloat16 against float32 on the trained tiny Gemma reranker's held-out queries (`seed`:
    the fixture's recipe trained from another seed)."""
    from export.llm_export import export_llm
    from export.tiny.trained import trained_gemma_checkpoint
    from reranker_core.families import GEMMA

    checkpoint = trained_gemma_checkpoint(seed=seed)
    model_dir = root / checkpoint.name / "gemma"  # one export per fixture version
    if not (model_dir / "reranker.json").exists():
        export_llm(checkpoint, model_dir, name="gemma", family=GEMMA, dtype="bfloat16")
    queries = relevance_task.evaluation_set(QUALITY_SEED, *QUALITY_SHAPE)
    pairs = [p for q in queries for p in q.pairs()]
    groups = [i for i, q in enumerate(queries) for _ in q.passages]
    return agreement(
        llm_scores(model_dir, pairs, "float32"), llm_scores(model_dir, pairs, "bfloat16"), groups
    )


def _encoded(checkpoint: Path, work: Workload) -> TokenRows:
    return TokenRows([np.asarray(s, dtype=np.int64) for s in encode_encoder_pairs(checkpoint, work.pairs)])


def speed_models(
    root: Path, quick: bool, variants: list[str], workloads: tuple[str, ...] = ("rerank", "mixed")
) -> tuple[Path, list[Workload]]:
    """The random-weight speed checkpoint (base shape, or a small one with `quick`) exported as
    each variant under `root`, and the speed workloads: (checkpoint, workloads)."""
    shape = QUICK if quick else BASE
    checkpoint = build_encoder_checkpoint(shape)
    builders = {
        "rerank": lambda: rerank_1x100(checkpoint, 20, 64) if quick else rerank_1x100(checkpoint),
        "mixed": lambda: mixed_pairs(checkpoint, 40, 16, 64) if quick else mixed_pairs(checkpoint),
    }
    for v in variants:
        export_variant(checkpoint, root, v)
    return checkpoint, [builders[w]() for w in workloads]


def speed(root: Path, checkpoint: Path, works: list[Workload], variants: list[str], rounds: int) -> dict:
    """pairs/s of each variant on each workload in this process, rounds alternating between the
    variants."""
    rows = {w.name: _encoded(checkpoint, w) for w in works}
    scorers = {v: variant_scorer(root / v, v) for v in variants}
    for v in variants:  # warm-up: first-call allocations and kernel selection
        scorers[v].score([TokenRows(rows[works[0].name].rows[:4])])
    walls: dict[str, dict[str, list[float]]] = {v: {w.name: [] for w in works} for v in variants}
    loads = []
    for _ in range(rounds):
        loads.append(os.getloadavg()[0])
        for w in works:
            for v in variants:
                t0 = time.perf_counter()
                scorers[v].score([rows[w.name]])
                walls[v][w.name].append(time.perf_counter() - t0)
    out: dict[str, dict[str, dict]] = {}
    for v in variants:
        out[v] = {}
        for w in works:
            wall = float(np.median(walls[v][w.name]))
            out[v][w.name] = {
                "pairs_per_s": len(w.pairs) / wall,
                "wall_s": walls[v][w.name],
                "vs_fp32": float(np.median(walls["fp32"][w.name])) / wall if "fp32" in walls else None,
            }
    out["_load_avg_1min"] = {"per_round": loads}  # type: ignore[assignment]
    return out


def run(
    quick: bool,
    variants: list[str],
    rounds: int,
    *,
    do_quality: bool = True,
    do_speed: bool = True,
    do_served: bool = True,
    do_llm: bool = False,
    llm_layers: int | None = None,
    llm_rounds: int | None = None,
    llm_profile: str | None = None,
    gemma_seeds: tuple[int, ...] = (),
    workloads: tuple[str, ...] = ("rerank", "mixed"),
    log=print,
) -> dict:
    """The section's results (quality, in-process speed, served speed, LLM), logged line by line."""
    root = CACHE / "precision"
    result: dict = {
        "machine": {**machine_info(), "bf16": bf16_support().describe()},
        "command": "python -m bench.precision" + (" --quick" if quick else ""),
        "load_avg_start": os.getloadavg(),
    }
    if do_quality:
        result["quality"] = {v: a.to_dict() for v, a in quality(root / "trained", variants).items()}
        for v, a in result["quality"].items():
            log(f"quality {v} vs fp32: {Agreement(**a).summary()}")
        if bf16_support().native:  # elsewhere the LLM runner computes bf16 exports in fp32
            gemma = llm_quality(root / "trained")
            result["quality_llm"] = {"gemma_bf16": gemma.to_dict()}
            log(f"quality Gemma bf16 (torch, CPU) vs fp32: {gemma.summary()}")
            for seed in gemma_seeds:
                other = llm_quality(root / "trained", seed)
                result["quality_llm"][f"gemma_bf16_seed{seed}"] = other.to_dict()
                log(f"quality Gemma bf16 (fixture trained from seed {seed}) vs fp32: {other.summary()}")
        else:
            log(f"quality Gemma bf16: skipped, this CPU has {bf16_support().describe()}")
    if do_speed or do_served:
        speed_root = root / ("quick" if quick else "base")
        checkpoint, works = speed_models(speed_root, quick, variants, workloads)
    if do_speed:
        result["speed"] = speed(speed_root, checkpoint, works, variants, rounds)
        for v in variants:
            for name, row in result["speed"][v].items():
                ratio = f" ({row['vs_fp32']:.2f}x fp32)" if row["vs_fp32"] else ""
                log(f"speed {v} {name}: {row['pairs_per_s']:.2f} pairs/s{ratio}")
    if do_served:
        result["served"] = precision_served.run(speed_root, checkpoint, variants, works, rounds, log)
        for name, row in result["served"]["workloads"].items():
            for path in precision_served.PATHS:
                log(
                    f"served {name} {path}: "
                    + ", ".join(
                        f"{v} {r['pairs_per_s']:.2f} pairs/s ({r['vs_fp32']:.2f}x)"
                        for v, r in row[path].items()
                    )
                )
    if do_llm:
        result["llm"] = llm_precision.run(
            quick,
            log,
            rounds=rounds if llm_rounds is None else llm_rounds,
            layers=llm_layers,
            profile_dtype=llm_profile,
        )
    result["load_avg_end"] = os.getloadavg()
    return result


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of integer seeds, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small shape (smoke run), not base")
    parser.add_argument("--variants", default="fp32,bf16,int8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument(
        "--skip-served", action="store_true", help="no served speed (one embedded Triton server, SDK client)"
    )
    parser.add_argument(
        "--llm", action="store_true", help="also the LLM Gemma-2B shape fp32 vs bf16, served (~19 GB RAM)"
    )
    parser.add_argument(
        "--llm-layers", type=int, default=None, help="decoder layers of the LLM shape (default: all that fit)"
    )
    parser.add_argument(
        "--workloads", default="rerank,mixed", help="speed workloads: rerank (1 x 100), mixed"
    )
    parser.add_argument(
        "--llm-rounds", type=int, default=None, help="LLM rounds (default: --rounds; 0: profile only)"
    )
    parser.add_argument(
        "--llm-profile",
        choices=llm_precision.DTYPES,
        default=None,
        help="also profile one call of the LLM scorer at this dtype in-process (torch.profiler)",
    )
    parser.add_argument(
        "--gemma-seeds",
        type=_seeds,
        default=(),
        help="also the Gemma fixture's recipe trained from these seeds, e.g. 13,14 (~2 min each, cached)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(GRAPHS))
    if unknown or "fp32" not in variants:
        parser.error(
            f"variants must include fp32 and come from {', '.join(GRAPHS)} (got {unknown or variants})"
        )
    result = run(
        args.quick,
        variants,
        args.rounds,
        do_quality=not args.skip_quality,
        do_speed=not args.skip_speed,
        do_served=not args.skip_served,
        do_llm=args.llm or args.llm_profile is not None,
        llm_layers=args.llm_layers,
        llm_rounds=args.llm_rounds,
        llm_profile=args.llm_profile,
        gemma_seeds=args.gemma_seeds,
        workloads=tuple(w for w in args.workloads.split(",") if w),
    )
    result["command"] = shlex.join(
        ["python", "-m", "bench.precision", *(sys.argv[1:] if argv is None else argv)]
    )
    out = args.out or RESULTS / ("precision-quick.json" if args.quick else "precision.json")
    write_result(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
