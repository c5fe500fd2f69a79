"""python -m reranker_eval against the real embedded Triton server and the rerank HTTP API, on
held-out queries of the synthetic relevance task: with the tiny encoder trained on that task, the
metrics are ir-measures' on the written runs, every way in gives the same metrics and the reranker
beats the first stage; the layerwise model's cutoff layers (and the lightweight model's
compression ratios) are separate points; a killed run resumes to the same report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import ir_measures
import pytest

from export.__main__ import main as export_main
from export.tiny.trained import trained_encoder_checkpoint
from reranker_eval.cli import main
from tests.support.api_server import ApiProcess, private_triton
from tests.support.eval_data import synthetic_set, write_beir

pytestmark = pytest.mark.integration

KEY = "eval-test-key"
MEASURES = ["nDCG@10", "RR@10", "R@5"]
TRAINED = "tiny-trained-encoder"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def beir(tmp_path_factory):
    return write_beir(synthetic_set(n_queries=4, passages=20), tmp_path_factory.mktemp("beir"))


@pytest.fixture(scope="module")
def trained_repository(tmp_path_factory):
    """The tiny encoder trained on the relevance task, exported as users do."""
    root = tmp_path_factory.mktemp("trained-repository")
    args = ["--model", str(trained_encoder_checkpoint()), "--name", TRAINED, "--repository", str(root)]
    assert export_main([*args, "--force"]) == 0
    return root


@pytest.fixture(scope="module")
def trained(trained_repository, tmp_path_factory):
    """A Triton of its own serving the trained encoder."""
    logs = tmp_path_factory.mktemp("trained-logs")
    with private_triton(trained_repository, logs, "eval-trained", [TRAINED]) as server:
        yield server


@pytest.fixture(scope="module")
def api(trained, tmp_path_factory):
    work = tmp_path_factory.mktemp("eval-api")
    (work / "keys").write_text(KEY + "\n")
    proc = ApiProcess(
        trained.grpc_url,
        ["--model", TRAINED, "--api-keys-file", str(work / "keys")],
        log_file=work / "api.log",
    ).start()
    yield proc
    proc.stop()


def data_args(beir: Path) -> list[str]:
    return ["--beir", str(beir), "--run", str(beir / "run.trec"), "--metrics", *MEASURES, "--no-progress"]


def evaluate(out: Path, *args: str) -> dict:
    assert main([*args, "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text())


def library_metrics(beir: Path, run_file: Path) -> dict[str, float]:
    """ir-measures itself on a TREC run file and the qrels (read independently of reranker_eval)."""
    lines = (beir / "qrels" / "test.tsv").read_text().splitlines()[1:]
    qrels = [ir_measures.Qrel(q, d, int(r)) for q, d, r in (line.split("\t") for line in lines)]
    measures = [ir_measures.parse_measure(m) for m in MEASURES]
    values = ir_measures.calc_aggregate(measures, qrels, ir_measures.read_trec_run(str(run_file)))
    return {str(m): values[m] for m in measures}


def test_every_way_in_gives_the_metrics_of_ir_measures(trained, trained_repository, api, beir, tmp_path):
    grpc, http, api_host = trained.grpc_url, trained.http_url, api.url.split("://")[1]
    configs = [
        f"grpc://{grpc}?model={TRAINED}&tokenize=client&model_repository={trained_repository}",
        f"http://{http}?model={TRAINED}&tokenize=server",
        f"tei://{api_host}?model={TRAINED}&api_key_env=EVAL_TEST_KEY",
        f"cohere://{api_host}?model={TRAINED}&api_key_env=EVAL_TEST_KEY&batch_size=7",
    ]
    os.environ["EVAL_TEST_KEY"] = KEY
    try:
        report = evaluate(tmp_path, *data_args(beir), *(a for c in configs for a in ("--config", c)))
    finally:
        del os.environ["EVAL_TEST_KEY"]
    first, *rows = report["rows"]
    assert first["metrics"] == library_metrics(beir, beir / "run.trec")
    assert [r["config"]["via"] for r in rows] == ["grpc", "http", "tei", "cohere"]
    for row in rows:
        assert row["metrics"] == library_metrics(beir, tmp_path / row["run_file"])
        assert row["metrics"] == rows[0]["metrics"]
        assert row["agreement"]["kendall_tau"] == pytest.approx(1.0, abs=1e-9)
        assert row["pairs_per_s"] > 0 and row["latency_ms"]["p95"] >= row["latency_ms"]["p50"] > 0
    assert rows[3]["requests"] == 4 * 3  # 20 passages in requests of at most 7
    # the trained reranker ranks the judged-relevant passages first, unlike the drawn order
    assert rows[0]["metrics"]["nDCG@10"] > first["metrics"]["nDCG@10"] + 0.1
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_cutoff_and_compression_variants_are_separate_points(triton_server, beir, tmp_path):
    configs = tmp_path / "configs.yaml"
    configs.write_text(
        f"defaults: {{via: grpc, url: '{triton_server.grpc_url}', tokenize: server}}\n"
        "configurations:\n"
        "  - model: tiny-layerwise\n"
        "    sweep: {cutoff_layers: [2, 4, 6]}\n"
        "  - model: tiny-lightweight\n"
        "    cutoff_layers: 6\n"
        "    compress_layers: [2]\n"
        "    sweep: {compress_ratio: [1, 2]}\n"
        "  - {model: tiny-layerwise, cutoff_layers: [4, 6], label: layers 4 and 6}\n"
    )
    report = evaluate(tmp_path / "out", *data_args(beir), "--configs", str(configs))
    rows, lightweight, (both,) = report["rows"][1:4], report["rows"][4:6], report["rows"][6:]
    assert [r["config"]["compress_ratio"] for r in lightweight] == [1, 2]
    assert {r["agreement"]["reference"] for r in lightweight} == {lightweight[0]["label"]}
    assert lightweight[1]["run_file"] != lightweight[0]["run_file"]
    assert [r["config"]["cutoff_layers"] for r in rows] == [[2], [4], [6]]
    assert len({r["label"] for r in rows}) == 3 and all(r["pairs_per_s"] > 0 for r in rows)
    assert {r["agreement"]["reference"] for r in rows} == {rows[2]["label"]}
    runs = [(tmp_path / "out" / r["run_file"]).read_text() for r in rows]
    assert len(set(runs)) == 3  # each cutoff layer scores differently
    # scored at layers 4 and 6, ranked by the deepest: the same run as layer 6 alone
    assert (tmp_path / "out" / both["run_file"]).read_text() == runs[2]
    assert both["agreement"] == {"reference": rows[2]["label"], "kendall_tau": pytest.approx(1.0)}
    assert any(r.get("pareto") for r in report["rows"][1:])


def test_a_killed_run_resumes_to_the_same_report(triton_server, beir, tmp_path):
    url = triton_server.grpc_url
    args = [
        *data_args(beir),
        "--config",
        f"grpc://{url}?model=tiny-layerwise&tokenize=server&cutoff_layers=2|3|4|5|6",
        "--config",
        f"grpc://{url}?model=tiny-encoder&tokenize=server",
    ]
    reference = evaluate(tmp_path / "reference", *args)
    out = tmp_path / "killed"
    cache = out / "scores.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reranker_eval", *args, "--out", str(out)],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (cache.exists() and cache.read_bytes().count(b"\n") >= 2):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = cache.read_bytes().count(b"\n")
    assert 2 <= killed_at < 6 * 4 and not (out / "report.json").exists()
    resumed = evaluate(out, *args)
    assert sum(r.get("cached", 0) for r in resumed["rows"]) == killed_at
    assert sum(r.get("scored_now", 0) for r in resumed["rows"]) == 6 * 4 - killed_at

    def quality(report):
        return [(r["label"], r["metrics"], r.get("agreement")) for r in report["rows"]]

    assert quality(resumed) == quality(reference)
    runs = [(r["run_file"], (out / r["run_file"]).read_text()) for r in resumed["rows"][1:]]
    assert runs == [
        (r["run_file"], (tmp_path / "reference" / r["run_file"]).read_text()) for r in reference["rows"][1:]
    ]


def test_a_refused_configuration_keeps_the_scores_of_the_others(triton_server, beir, tmp_path, capsys):
    url = triton_server.grpc_url
    good = f"grpc://{url}?model=tiny-layerwise&tokenize=server&cutoff_layers=3"
    bad = f"grpc://{url}?model=tiny-layerwise&tokenize=server&cutoff_layers=99"
    assert main([*data_args(beir), "--out", str(tmp_path), "--config", good, "--config", bad]) == 2
    err = capsys.readouterr().err
    assert "cutoff_layers=99" in err and "99" in err.split("error:")[1] and "scores so far are kept" in err
    report = evaluate(tmp_path, *data_args(beir), "--config", good)
    assert report["rows"][1]["scored_now"] == 0 and report["rows"][1]["cached"] == 4
