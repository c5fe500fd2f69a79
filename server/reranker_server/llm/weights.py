"""Reading a Hugging Face style checkpoint directory without transformers: config.json plus
safetensors weights (one file or shards listed in model.safetensors.index.json).

Pickle checkpoints (pytorch_model*.bin) can run arbitrary code when loaded; they are refused
unless the caller passes allow_pickle=True (then loaded with torch.load(weights_only=True)).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from reranker_core.files import PICKLE_FILE, PICKLE_INDEX, SAFETENSORS_FILE, SAFETENSORS_INDEX

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


class CheckpointError(ValueError):
    """The checkpoint directory cannot be used (missing files, unsupported config, bad weights)."""


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise CheckpointError(f"unsupported dtype {dtype!r}; use one of {sorted(DTYPES)}") from None


def load_config(checkpoint_dir: Path | str) -> dict[str, Any]:
    path = Path(checkpoint_dir) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"no config.json in {checkpoint_dir}")
    return json.loads(path.read_text())


class WeightReader:
    """Lazy access to the tensors of a checkpoint by name (only requested tensors are read)."""

    def __init__(self, checkpoint_dir: Path | str, *, allow_pickle: bool = False) -> None:
        self.dir = Path(checkpoint_dir)
        self._files: dict[str, Path] = {}
        self._pickled: dict[str, torch.Tensor] | None = None
        if (self.dir / SAFETENSORS_INDEX).is_file():
            index = json.loads((self.dir / SAFETENSORS_INDEX).read_text())
            self._files = {name: self.dir / shard for name, shard in index["weight_map"].items()}
        elif (self.dir / SAFETENSORS_FILE).is_file():
            self._files = {
                name: self.dir / SAFETENSORS_FILE for name in self._keys(self.dir / SAFETENSORS_FILE)
            }
        else:
            pickles = [p for p in (self.dir / PICKLE_FILE, self.dir / PICKLE_INDEX) if p.is_file()]
            if not pickles:
                raise CheckpointError(f"no model.safetensors or {SAFETENSORS_INDEX} in {self.dir}")
            if not allow_pickle:
                raise CheckpointError(
                    f"{self.dir} holds only pickle weights ({pickles[0].name}); convert them to safetensors "
                    "or pass allow_pickle=True if you trust the checkpoint"
                )
            self._pickled = self._load_pickles()

    @staticmethod
    def _keys(path: Path) -> Iterable[str]:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return list(f.keys())

    def _load_pickles(self) -> dict[str, torch.Tensor]:
        if (self.dir / PICKLE_INDEX).is_file():
            index = json.loads((self.dir / PICKLE_INDEX).read_text())
            shards = sorted(set(index["weight_map"].values()))
        else:
            shards = [PICKLE_FILE]
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(torch.load(self.dir / shard, map_location="cpu", weights_only=True))
        return state

    def names(self) -> set[str]:
        return set(self._pickled) if self._pickled is not None else set(self._files)

    def __contains__(self, name: str) -> bool:
        return name in self.names()

    def get(self, name: str) -> torch.Tensor:
        if self._pickled is not None:
            if name not in self._pickled:
                raise CheckpointError(f"tensor {name!r} missing from the checkpoint in {self.dir}")
            return self._pickled[name]
        if name not in self._files:
            raise CheckpointError(f"tensor {name!r} missing from the checkpoint in {self.dir}")
        from safetensors import safe_open

        with safe_open(str(self._files[name]), framework="pt") as f:
            return f.get_tensor(name)

    def get_first(self, names: Iterable[str]) -> torch.Tensor:
        """The first of several alternative names that exists (checkpoints differ in prefixes)."""
        names = list(names)
        for name in names:
            if name in self:
                return self.get(name)
        raise CheckpointError(f"none of {names} in the checkpoint in {self.dir}")


def expect_shape(name: str, tensor: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    if tuple(tensor.shape) != shape:
        raise CheckpointError(f"{name}: shape {tuple(tensor.shape)} does not match the config ({shape})")
    return tensor


Loader = Callable[[str, tuple[int, ...]], torch.Tensor]
