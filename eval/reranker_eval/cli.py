"""`python -m reranker_eval`: score your queries through served rerankers and compare quality and
speed of every configuration, with the first stage as the baseline."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from reranker_eval.cache import ScoreCache
from reranker_eval.configs import check_unique, from_spec, from_yaml
from reranker_eval.dataset import Dataset, load_beir, load_jsonl
from reranker_eval.errors import EvalError
from reranker_eval.metrics import DEFAULT_MEASURES, parse_measures
from reranker_eval.plot import plot
from reranker_eval.report import build_report, write_json, write_trec_runs
from reranker_eval.runner import run_all
from reranker_eval.table import render

EPILOG = """\
data (one of):
  --jsonl FILE                      one line per query: {"query", "documents", "relevance"}
  --beir DIR --run RUN              DIR/corpus.jsonl, DIR/queries.jsonl, DIR/qrels/<split>.tsv
  --corpus F --queries F --qrels F --run RUN
configurations (repeat --config, and/or --configs FILE.yaml):
  grpc://localhost:8001?model=NAME&cutoff_layers=28|32|40   (a|b sweeps)
  http://localhost:8000?model=NAME&tokenize=server
  tei://localhost:8080?model=NAME          cohere://localhost:8080?model=NAME
outputs in --out: report.json, pareto.png, runs/<key>.trec, scores.jsonl (the resumable cache)
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m reranker_eval",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--jsonl", type=Path, help="queries with documents and relevance, one JSON object a line"
    )
    data.add_argument("--beir", type=Path, help="a BEIR dataset directory (with --run)")
    data.add_argument("--split", default="test", help="BEIR qrels split (default: test)")
    data.add_argument("--corpus", type=Path, help="corpus.jsonl ({_id, title, text})")
    data.add_argument("--queries", type=Path, help="queries.jsonl ({_id, text})")
    data.add_argument("--qrels", type=Path, help="qrels: BEIR TSV or TREC format")
    data.add_argument("--run", type=Path, help="first-stage TREC run file (qid Q0 docid rank score tag)")
    data.add_argument("--top-k", type=int, help="rerank the first K candidates of each query (default: all)")
    data.add_argument("--max-queries", type=int, help="evaluate the first N queries only")
    data.add_argument(
        "--skip-unjudged",
        action="store_true",
        help="leave out run queries without judgements (default: error)",
    )
    conf = p.add_argument_group("configurations")
    conf.add_argument(
        "--config", action="append", default=[], metavar="SPEC", help="a configuration (repeatable)"
    )
    conf.add_argument("--configs", type=Path, help="a YAML file of configurations")
    out = p.add_argument_group("output")
    out.add_argument(
        "--metrics",
        nargs="+",
        default=list(DEFAULT_MEASURES),
        help="ir-measures names; the first is the quality axis of the plot (default: %(default)s)",
    )
    out.add_argument("--out", type=Path, default=Path("reranker-eval"), help="output directory")
    out.add_argument("--cache", type=Path, help="score cache file (default: OUT/scores.jsonl)")
    out.add_argument("--title", help="title of the plot and the report (default: the data set's name)")
    out.add_argument("--no-plot", action="store_true", help="skip the PNG")
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: on a terminal)",
    )
    return p


def load_dataset(args: argparse.Namespace) -> tuple[Dataset, str]:
    """The dataset of the data arguments, and the name of its first stage."""
    if args.jsonl:
        if args.beir or args.corpus or args.run:
            raise EvalError("--jsonl carries its own candidates: give it without --beir/--corpus/--run")
        return load_jsonl(args.jsonl, top_k=args.top_k, max_queries=args.max_queries), "input order"
    if args.beir:
        args.corpus = args.corpus or args.beir / "corpus.jsonl"
        args.queries = args.queries or args.beir / "queries.jsonl"
        args.qrels = args.qrels or args.beir / "qrels" / f"{args.split}.tsv"
    if not (args.corpus and args.queries and args.qrels and args.run):
        raise EvalError("give --jsonl FILE, or --beir DIR --run RUN, or --corpus --queries --qrels --run")
    dataset = load_beir(
        args.corpus,
        args.queries,
        args.qrels,
        args.run,
        top_k=args.top_k,
        max_queries=args.max_queries,
        skip_unjudged=args.skip_unjudged,
    )
    return dataset, args.run.name


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    cache = None
    try:
        measures = parse_measures(args.metrics)
        configs = [c for spec in args.config for c in from_spec(spec)]
        if args.configs:
            configs += from_yaml(args.configs)
        check_unique(configs)
        dataset, first_stage = load_dataset(args)
        cache = ScoreCache(args.cache or args.out / "scores.jsonl")
        results = run_all(dataset, configs, cache, progress=args.progress)
        if args.title:
            dataset.name = args.title
        report = build_report(
            dataset, measures, results, first_stage, ["python -m reranker_eval", *(argv or sys.argv[1:])]
        )
        runs = write_trec_runs(results, args.out / "runs")
        for row in report["rows"]:
            if row["label"] in runs:
                row["run_file"] = str(runs[row["label"]].relative_to(args.out))
        write_json(report, args.out / "report.json")
        if not args.no_plot:
            plot(report, args.out / "pareto.png")
    except EvalError as exc:
        print(f"reranker_eval: error: {exc}", file=sys.stderr)
        if cache is not None:
            print(f"reranker_eval: scores so far are kept in {cache.path}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"reranker_eval: interrupted; scores so far are kept in {cache.path if cache else 'the cache'}: "
            "run the same command again to continue",
            file=sys.stderr,
        )
        return 130
    finally:
        if cache is not None:
            cache.close()
    print(render(report))
    where = f"{args.out / 'report.json'}" + ("" if args.no_plot else f", {args.out / 'pareto.png'}")
    print(f"written: {where}, TREC runs in {args.out / 'runs'}")
    return 0
