"""Native bf16 detection from the CPU flags (faked here: the tests run on any x86 CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reranker_core.cpu_features import (
    FLAGS_ENV,
    bf16_fallback_message,
    bf16_support,
    cpu_flags,
)

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni
bogomips\t: 4800.00

processor\t: 1
flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""


def test_flags_are_read_from_cpuinfo(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    flags = cpu_flags(path)
    assert "avx512_bf16" in flags and "avx2" in flags and "bogomips" not in flags


def test_unreadable_cpuinfo_means_no_flags(tmp_path: Path, monkeypatch):
    monkeypatch.delenv(FLAGS_ENV, raising=False)
    assert cpu_flags(tmp_path / "missing") == frozenset()
    assert not bf16_support(cpu_flags(tmp_path / "missing")).native


def test_environment_replaces_the_cpu_flags(monkeypatch):
    monkeypatch.setenv(FLAGS_ENV, "avx2 amx_bf16")
    assert cpu_flags() == frozenset({"avx2", "amx_bf16"})
    assert bf16_support().amx_bf16


@pytest.mark.parametrize(
    ("flags", "native", "words"),
    [
        ({"avx2", "avx512f"}, False, "no native bf16"),
        ({"avx512f", "avx512_bf16"}, True, "AVX512-BF16, no AMX"),
        ({"avx512_bf16", "amx_bf16", "amx_tile"}, True, "AMX-BF16"),
    ],
)
def test_support_and_its_description(flags, native, words):
    support = bf16_support(frozenset(flags))
    assert support.native is native
    assert words in support.describe()


def test_fallback_message_says_what_runs_instead():
    message = bf16_fallback_message("tiny", bf16_support(frozenset({"avx2"})))
    assert message.startswith("tiny: bf16 requested") and "running fp32" in message
