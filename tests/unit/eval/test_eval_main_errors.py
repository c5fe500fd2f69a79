"""python -m reranker_eval refuses bad input before scoring anything, naming file and line."""

from __future__ import annotations

import pytest

from reranker_eval.cli import main
from tests.support.eval_data import synthetic_set, write_beir

CONFIG = ["--config", "grpc://127.0.0.1:1?model=m"]  # never contacted: the data is refused first


@pytest.fixture
def beir(tmp_path):
    return write_beir(synthetic_set(n_queries=2, passages=4), tmp_path / "beir")


def run(capsys, *args):
    code = main([*args, "--no-progress"])
    return code, capsys.readouterr().err


def test_unknown_document_in_the_run(beir, tmp_path, capsys):
    with open(beir / "run.trec", "a") as out:
        out.write("q0 Q0 missing 9 0.5 bm25\n")
    code, err = run(
        capsys, "--beir", str(beir), "--run", str(beir / "run.trec"), "--out", str(tmp_path / "o"), *CONFIG
    )
    assert code == 2 and "run.trec:9: document 'missing' is not in" in err
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "no configuration to evaluate"),
        (CONFIG, "give --jsonl FILE, or --beir DIR --run RUN"),
        ([*CONFIG, "--metrics", "nDCG@ten"], "'nDCG@ten' is not an ir-measures measure"),
        ([*CONFIG, "--top-k", "0"], "--top-k must be at least 1"),
    ],
)
def test_usage_errors(beir, capsys, args, message):
    data = ["--beir", str(beir), "--run", str(beir / "run.trec")] if "--top-k" in args else []
    code, err = run(capsys, *data, *args)
    assert code == 2 and message in err
