"""Does this CPU compute bf16 natively? Read once from /proc/cpuinfo's flags.

bf16 is fast on a CPU only with native instructions: AVX512-BF16 (AMD Zen 4/5, Intel Cooper Lake
and later) or AMX-BF16 (Intel Sapphire Rapids and later). Elsewhere inference engines emulate it,
slower than fp32, so the export and the runners ask here first and say plainly what they do
instead (the bf16 variants run fp32 on such a CPU; see docs/deployment.md).

$RERANKER_CPU_FLAGS (space-separated flags) replaces the CPU's own flags: for tests, and for
a server that must behave as on another CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
FLAGS_ENV = "RERANKER_CPU_FLAGS"
AVX512_BF16 = "avx512_bf16"
AMX_BF16 = "amx_bf16"


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags ($RERANKER_CPU_FLAGS when set); empty when they cannot be read."""
    override = os.environ.get(FLAGS_ENV)
    if override is not None:
        return frozenset(override.split())
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@dataclass(frozen=True)
class Bf16Support:
    """Which native bf16 instructions the CPU has."""

    avx512_bf16: bool
    amx_bf16: bool

    @property
    def native(self) -> bool:
        return self.avx512_bf16 or self.amx_bf16

    def describe(self) -> str:
        """One line for logs: what the CPU has, or that bf16 would be emulated."""
        if self.amx_bf16:
            return "native bf16 (AMX-BF16)"
        if self.avx512_bf16:
            return "native bf16 (AVX512-BF16, no AMX)"
        return "no native bf16 (neither avx512_bf16 nor amx_bf16 in the CPU flags)"


def bf16_support(flags: frozenset[str] | None = None) -> Bf16Support:
    """bf16 support from `flags` (default: this CPU's, see `cpu_flags`)."""
    flags = cpu_flags() if flags is None else flags
    return Bf16Support(avx512_bf16=AVX512_BF16 in flags, amx_bf16=AMX_BF16 in flags)


def bf16_fallback_message(what: str, support: Bf16Support | None = None) -> str:
    """What a bf16 variant does on a CPU without native bf16: runs fp32, said in one line."""
    support = support or bf16_support()
    return (
        f"{what}: bf16 requested but this CPU has {support.describe()}; running fp32 instead "
        "(emulated bf16 would be slower than fp32)"
    )
