"""Which layers score and compress for one request of an LLM reranker: the per-request cutoff
and compression options resolved against what the model has. Used by the token model (against
the checkpoint) and the text model (against the manifest, before any token model call)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reranker_core.errors import InputError
from reranker_core.manifest import ModelManifest


@dataclass(frozen=True)
class LayerLimits:
    """The layers a model can score at and the compression it supports, with its defaults."""

    family: str
    num_hidden_layers: int
    allowed_cutoffs: tuple[int, ...]
    default_cutoffs: tuple[int, ...]
    compress_ratios: tuple[int, ...] = (1,)
    default_compress_ratio: int = 1
    default_compress_layers: tuple[int, ...] = ()

    @property
    def compresses(self) -> bool:
        return any(r != 1 for r in self.compress_ratios)

    @classmethod
    def from_manifest(cls, manifest: ModelManifest) -> LayerLimits:
        llm = manifest.llm
        if llm is None:
            raise ValueError(f"a {manifest.family} model has no layer settings")
        last = (llm.num_hidden_layers,)
        return cls(
            manifest.family,
            llm.num_hidden_layers,
            tuple(llm.cutoff_layers) or last,
            tuple(llm.default_cutoff_layers) or last,
            tuple(llm.compress_ratios) or (1,),
            llm.default_compress_ratio,
            tuple(llm.default_compress_layers),
        )


@dataclass(frozen=True)
class LayerSettings:
    """What one group of requests is scored with (hashable: equal settings run together)."""

    cutoff_layers: tuple[int, ...]
    compress_ratio: int = 1
    compress_layers: tuple[int, ...] = ()


def describe_layers(layers: Sequence[int]) -> str:
    """'2..8 step 2' for an arithmetic run, else the list."""
    layers = list(layers)
    if len(layers) > 2:
        step = layers[1] - layers[0]
        if all(b - a == step for a, b in zip(layers, layers[1:])):
            return f"{layers[0]}..{layers[-1]}" + (f" step {step}" if step != 1 else "")
    return ", ".join(map(str, layers))


def resolve_layers(
    cutoff_layers: Sequence[int] | None,
    compress_ratio: int | None,
    compress_layers: Sequence[int] | None,
    limits: LayerLimits,
) -> LayerSettings:
    """Cutoffs (sorted, unique, allowed), compress ratio and the compress layers that matter."""
    allowed = describe_layers(limits.allowed_cutoffs)
    if cutoff_layers is None:
        cutoffs = sorted(set(limits.default_cutoffs))
    else:
        cutoffs = sorted(set(cutoff_layers))
        if not cutoffs:
            raise InputError(f"cutoff_layers is empty; allowed layers: {allowed}")
        bad = [c for c in cutoffs if c not in limits.allowed_cutoffs]
        if bad:
            raise InputError(
                f"cutoff layer(s) {bad} not available for this {limits.family} model; "
                f"allowed layers: {allowed}"
            )
    ratio = limits.default_compress_ratio if compress_ratio is None else compress_ratio
    if ratio not in limits.compress_ratios:
        raise InputError(
            f"compress_ratio {ratio} not supported by this {limits.family} model; "
            f"allowed: {', '.join(map(str, limits.compress_ratios))}"
        )
    layers: list[int] = []
    if compress_layers is not None:
        if not limits.compresses:
            raise InputError(f"compress_layers is not supported by this {limits.family} model")
        layers = list(compress_layers)
        bad = [c for c in layers if not 0 <= c <= limits.num_hidden_layers]
        if bad:
            raise InputError(
                f"compress layer(s) {bad} out of range; allowed layers: 0..{limits.num_hidden_layers}"
            )
    elif ratio != 1:
        layers = list(limits.default_compress_layers)
    if ratio == 1:
        layers = []
    # only layers strictly between 0 and the deepest cutoff change anything
    effective = tuple(sorted({c for c in layers if 0 < c < cutoffs[-1]}))
    return LayerSettings(tuple(cutoffs), ratio if effective else 1, effective)
