"""TensorRT optimization profiles: the (batch, sequence length) ranges an engine is built for,
and the config parameter that records them (rendered by export/gpu_configs.py, built by
export/tensorrt.py, checked by export/config_check.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reranker_core.tensors import ENCODER_INPUTS

TRT_PROFILES_PARAMETER = "tensorrt_profiles"


@dataclass(frozen=True)
class TrtProfile:
    """One TensorRT optimization profile: (batch, sequence length) at min / opt / max."""

    min_batch: int = 1
    min_len: int = 1
    opt_batch: int = 1
    opt_len: int = 1
    max_batch: int = 1
    max_len: int = 1

    def __post_init__(self) -> None:
        for dim in ("batch", "len"):
            lo, opt, hi = (getattr(self, f"{k}_{dim}") for k in ("min", "opt", "max"))
            if not 1 <= lo <= opt <= hi:
                raise ValueError(
                    f"TensorRT profile needs 1 <= min <= opt <= max for {dim}, got {lo}/{opt}/{hi}"
                )

    def shapes(self, which: str, names: Sequence[str] = ENCODER_INPUTS) -> str:
        """`input_ids:BxL,attention_mask:BxL` for which in min/opt/max (trtexec and ORT syntax)."""
        batch, length = getattr(self, f"{which}_batch"), getattr(self, f"{which}_len")
        return ",".join(f"{n}:{batch}x{length}" for n in names)

    def to_dict(self) -> dict[str, list[int]]:
        return {k: [getattr(self, f"{k}_batch"), getattr(self, f"{k}_len")] for k in ("min", "opt", "max")}

    @classmethod
    def from_dict(cls, data: dict[str, Sequence[int]]) -> TrtProfile:
        return cls(*data["min"], *data["opt"], *data["max"])
