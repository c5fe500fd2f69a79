"""`make eval-example`: the worked example of docs/choosing.md, end to end on this machine.

Exports the tiny rerankers trained on the synthetic relevance task (export/tiny/trained.py; their
scores mean something, unlike the random-weight ones) in fp32 and int8, serves them on the
embedded Triton server with the rerank HTTP API in front, writes a held-out evaluation set of that
task as JSON Lines and runs `python -m reranker_eval` over a few configurations. The outputs
(report.json, pareto.png, table.txt, the data set and the configurations) land in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from export.__main__ import main as export_main
from export.tiny.relevance_task import evaluation_set
from export.tiny.trained import trained_encoder_checkpoint, trained_gemma_checkpoint
from reranker_eval.cli import main as eval_main
from reranker_eval.table import render
from reranker_server.embedded import EmbeddedTritonServer

EVAL_SEED = 4242  # held out: the trained checkpoints learn from seeds below 1000
ENCODER, ENCODER_INT8, GEMMA = "tiny-trained-encoder", "tiny-trained-encoder-int8", "tiny-trained-gemma"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_models(repository: Path) -> None:
    """The trained checkpoints exported as users export theirs."""
    encoder, gemma = trained_encoder_checkpoint(), trained_gemma_checkpoint()
    for args in (
        ["--model", str(encoder), "--name", ENCODER],
        ["--model", str(encoder), "--name", ENCODER_INT8, "--cpu-graph", "int8"],
        ["--model", str(gemma), "--name", GEMMA],
    ):
        if export_main([*args, "--repository", str(repository), "--force"]) != 0:
            raise SystemExit(f"export failed: {' '.join(args)}")


def write_dataset(path: Path, n_queries: int, passages: int) -> Path:
    """The held-out evaluation set as reranker_eval's JSON Lines layout (candidates in drawn order)."""
    with open(path, "w", encoding="utf-8") as out:
        for i, item in enumerate(evaluation_set(EVAL_SEED, n_queries, passages)):
            line = {
                "query_id": f"q{i}",
                "query": item.query,
                "documents": list(item.passages),
                "relevance": list(item.relevance),
            }
            out.write(json.dumps(line) + "\n")
    return path


def write_configs(path: Path, grpc: str, api: str) -> Path:
    """The configurations compared: max_length, precision, model and the way in."""
    path.write_text(
        f"""# reranker_eval configurations of the worked example (docs/choosing.md)
defaults: {{via: grpc, url: "127.0.0.1:{grpc}", tokenize: server}}
configurations:
  - {{model: {ENCODER}}}                        # fp32, all of max_length: the reference of its group
  - model: {ENCODER}
    sweep: {{max_length: [8, 12, 16]}}
  - {{model: {ENCODER_INT8}, group: {ENCODER}}}
  - {{model: {ENCODER}, via: tei, url: "127.0.0.1:{api}", label: "{ENCODER} (TEI API)"}}
  - {{model: {GEMMA}}}
""",
        encoding="utf-8",
    )
    return path


def start_api(grpc: int, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reranker_api", "--triton-url", f"127.0.0.1:{grpc}", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health/live", timeout=2).read()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"the rerank API did not start (log: {log})") from None
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("eval-example"), help="output directory")
    p.add_argument("--queries", type=int, default=20)
    p.add_argument("--passages", type=int, default=30, help="candidates per query")
    args = p.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="eval-example-"))
    try:
        repository = work / "model_repository"
        export_models(repository)
        http, grpc, metrics, api_port = (free_port() for _ in range(4))
        server = EmbeddedTritonServer(
            repository, http_port=http, grpc_port=grpc, metrics_port=metrics, log_file=work / "triton.log"
        )
        server.start(timeout=300)
        api = None
        try:
            api = start_api(grpc, api_port, work / "api.log")
            write_dataset(args.out / "dataset.jsonl", args.queries, args.passages)
            write_configs(args.out / "configs.yaml", grpc, api_port)
            (args.out / "scores.jsonl").unlink(missing_ok=True)  # a fresh run: every figure measured now
            os.chdir(args.out)  # the report names the files as the docs do
            title = "tiny rerankers trained on the synthetic relevance task (a test fixture)"
            code = eval_main(
                ["--jsonl", "dataset.jsonl", "--configs", "configs.yaml", "--out", ".", "--title", title]
            )
        finally:
            if api is not None:
                api.terminate()
                api.wait(timeout=30)
            server.stop()
        if code == 0:
            report = json.loads(Path("report.json").read_text(encoding="utf-8"))
            Path("table.txt").write_text(render(report) + "\n", encoding="utf-8")
            shutil.rmtree("runs", ignore_errors=True)
            Path("scores.jsonl").unlink(missing_ok=True)
        return code
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
