"""Which (model, parameters) combinations the load tests drive, from a model repository."""

from __future__ import annotations

from pathlib import Path

from reranker_core.families import ENCODER
from reranker_core.manifest import ModelManifest
from tests.support.load.driver import Target

LLM_PROMPT = "Given a query A and a passage B, say whether B answers A with Yes or No."


def targets_for_repository(
    root: Path, models: list[str] | None = None, max_length: int | None = None
) -> list[Target]:
    """Every exported model under `root` (or just `models`). LLM families several times: default
    and custom prompt, one and two cutoff layers, token compression, where the family has them.
    `max_length` lowers every model's truncation length (the CI run uses it to stay short)."""
    targets: list[Target] = []
    for manifest_path in sorted(Path(root).glob("*/reranker.json")):
        manifest = ModelManifest.load(manifest_path.parent)
        name = manifest_path.parent.name
        if models and name not in models:
            continue
        fp16 = manifest.precision not in ("fp32", "float32")
        tolerance = 2e-3 if fp16 else 1e-4
        limit = min(max_length or manifest.default_max_length, manifest.max_positions)
        base: tuple = ()
        if limit < manifest.default_max_length:  # CI: shorter sequences; tiny models: short positions
            base = (("max_length", limit),)
        if manifest.family == ENCODER:
            targets.append(Target(name, base, tolerance))
            continue
        tolerance = max(tolerance, 1e-3)
        targets += [Target(name, base, tolerance), Target(name, base + (("prompt", LLM_PROMPT),), tolerance)]
        layers = list(manifest.llm.cutoff_layers)
        if layers:  # one layer, and several at once (one score column per layer)
            targets.append(Target(name, base + (("cutoff_layers", (layers[0],)),), tolerance))
            targets.append(Target(name, base + (("cutoff_layers", (layers[0], layers[-1])),), tolerance))
        ratios = [x for x in manifest.llm.compress_ratios if x > 1]
        if ratios and layers:
            targets.append(
                Target(
                    name,
                    base + (("compress_ratio", ratios[0]), ("compress_layers", (layers[-1],))),
                    tolerance,
                )
            )
    return targets
