"""Which dtype a KIND_CPU LLM instance computes in (reranker_server.llm_model.cpu_dtype)."""

from __future__ import annotations

import pytest

from reranker_core.cpu_features import bf16_support
from tests.support import fake_pb_utils

fake_pb_utils.install()

from reranker_server.llm_model import cpu_dtype  # noqa: E402

NATIVE = bf16_support(frozenset({"avx512f", "avx512_bf16"}))
NONE = bf16_support(frozenset({"avx2"}))


@pytest.mark.parametrize("dtype", ["float16", "fp16"])
def test_float16_runs_float32_on_cpu_as_flagembedding_does(dtype):
    assert cpu_dtype(dtype, "m", NATIVE) == "float32"


def test_bfloat16_runs_bfloat16_where_the_cpu_has_it(capsys):
    assert cpu_dtype("bfloat16", "m", NATIVE) == "bfloat16"
    assert capsys.readouterr().out == ""


def test_bfloat16_runs_float32_and_says_so_without_native_bf16(capsys):
    assert cpu_dtype("bfloat16", "gemma", NONE) == "float32"
    out = capsys.readouterr().out
    assert out.startswith("gemma: bf16 requested but this CPU has no native bf16") and "running fp32" in out


def test_float32_stays_float32():
    assert cpu_dtype("float32", "m", NONE) == "float32"
