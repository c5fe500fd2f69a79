"""scripts/gpu_check.py end to end on the CPU (`--device cpu --quick`): the same pipeline a GPU
node runs (python -m export -> embedded Triton with configs/gpucheck.pbtxt -> reranker_client),
so CI proves the GPU check works without a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.ports import free_ports

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_the_product_on_cpu(tmp_path):
    out = tmp_path / "out"
    ports = [str(p) for p in free_ports(3)]
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "gpu_check.py"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
            "--ports",
            *ports,
        ],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["status"] == "PASS" and report["exit_code"] == 0
    served = {m["name"]: m for m in report["models"]}
    assert set(served) == {
        "enc-fp32",
        "enc-fp16",
        "enc-fp32-ref",
        "llm-fp32",
        "llm-fp16",
        "llm-bf16",
        "llm-fp32-ref",
    }
    parity = {p["name"]: p for p in report["parity"]}
    assert set(parity) == {
        "enc-fp32-vs-cpu-reference",
        "enc-fp16-vs-fp32",
        "llm-fp32-vs-cpu-reference",
        "llm-fp16-vs-fp32",
        "llm-bf16-vs-fp32",
    }
    assert all(p["passed"] for p in parity.values())
    assert parity["enc-fp16-vs-fp32"]["max_abs"] > 0  # really a different (fp16) graph
    assert parity["llm-bf16-vs-fp32"]["max_abs"] > 0  # really bf16
    rows = {r["model"]: r for r in report["throughput"]}
    assert set(rows) == set(served) - {"enc-fp32-ref", "llm-fp32-ref"}
    assert all(r["calls"] > 0 and r["pairs_per_s"] > 0 and not r["errors"] for r in rows.values())
    log = (out / "tritonserver.log").read_text()
    assert "enc-fp32: model.onnx on CPUExecutionProvider" in log  # the product's ONNX runner served it
    assert "PASS" in proc.stdout
