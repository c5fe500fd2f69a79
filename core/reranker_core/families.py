"""The four model families and every per-family default FlagEmbedding 1.4.2 applies.

Export, the client's encoding, the server's scorers and the rerank API all read these; a family
name appears as a string literal only here."""

from __future__ import annotations

from dataclasses import dataclass

ENCODER = "encoder"  # bge-reranker-base / -large / -v2-m3 (FlagReranker)
GEMMA = "gemma"  # bge-reranker-v2-gemma (FlagLLMReranker)
MINICPM_LAYERWISE = "minicpm_layerwise"  # bge-reranker-v2-minicpm-layerwise (LayerWiseFlagLLMReranker)
GEMMA2_LIGHTWEIGHT = "gemma2_lightweight"  # bge-reranker-v2.5-gemma2-lightweight (LightWeightFlagLLMReranker)

GEMMA_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer "
    "to the query by providing a prediction of either 'Yes' or 'No'."
)
LIGHTWEIGHT_PROMPT = "Predict whether passage B contains an answer to query A."

# Per-request options beyond the common ones (normalize, max_length, query_max_length, ...).
PROMPT = "prompt"
CUTOFF_LAYERS = "cutoff_layers"
COMPRESS_RATIO = "compress_ratio"
COMPRESS_LAYERS = "compress_layers"


@dataclass(frozen=True)
class FamilySpec:
    """What differs between families: accepted options and the checkpoint defaults FlagEmbedding's
    configuration classes use when config.json leaves a field out."""

    name: str
    decoder: bool
    options: frozenset[str] = frozenset()
    default_prompt: str | None = None
    compress_ratios: tuple[int, ...] = (1,)
    default_compress_layers: tuple[int, ...] = ()
    default_start_layer: int | None = None  # first layer with a score head
    default_layer_sep: int = 1  # layers between score heads
    default_softcap: float | None = None  # final_logit_softcapping

    @property
    def compresses(self) -> bool:
        return any(r != 1 for r in self.compress_ratios)


FAMILY_SPECS: dict[str, FamilySpec] = {
    ENCODER: FamilySpec(ENCODER, decoder=False),
    GEMMA: FamilySpec(GEMMA, decoder=True, options=frozenset({PROMPT}), default_prompt=GEMMA_PROMPT),
    MINICPM_LAYERWISE: FamilySpec(
        MINICPM_LAYERWISE,
        decoder=True,
        options=frozenset({PROMPT, CUTOFF_LAYERS}),
        default_prompt=GEMMA_PROMPT,
        default_start_layer=8,
    ),  # LayerWiseMiniCPMConfig
    GEMMA2_LIGHTWEIGHT: FamilySpec(
        GEMMA2_LIGHTWEIGHT,
        decoder=True,
        options=frozenset({PROMPT, CUTOFF_LAYERS, COMPRESS_RATIO, COMPRESS_LAYERS}),
        default_prompt=LIGHTWEIGHT_PROMPT,
        compress_ratios=(1, 2, 4, 8),  # LightWeightFlagLLMReranker
        default_compress_layers=(8,),
        default_start_layer=28,
        default_layer_sep=28,  # CostWiseGemmaConfig
        default_softcap=30.0,
    ),  # Gemma2Config
}
FAMILIES = tuple(FAMILY_SPECS)
DECODER_FAMILIES = tuple(name for name, spec in FAMILY_SPECS.items() if spec.decoder)


def family_spec(family: str) -> FamilySpec:
    """The spec of `family`; ValueError naming the known families otherwise."""
    try:
        return FAMILY_SPECS[family]
    except KeyError:
        raise ValueError(f"unknown model family {family!r}; known: {', '.join(FAMILIES)}") from None
