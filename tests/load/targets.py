"""Which (model, parameters) combinations the load tests drive, from a model repository."""
from __future__ import annotations

from pathlib import Path

from reranker_client.manifest import ENCODER, ModelManifest
from tests.load.driver import Target

LLM_PROMPT = "Given a query A and a passage B, say whether B answers A with Yes or No."


def targets_for_repository(root: Path, models: list[str] | None = None) -> list[Target]:
    """Every exported model under `root` (or just `models`); LLM families twice: with the default
    prompt and with a custom one, plus each single cutoff layer the manifest lists."""
    targets: list[Target] = []
    for manifest_path in sorted(Path(root).glob("*/reranker.json")):
        manifest = ModelManifest.load(manifest_path.parent)
        name = manifest_path.parent.name
        if models and name not in models:
            continue
        fp16 = manifest.precision not in ("fp32", "float32")
        tolerance = 2e-3 if fp16 else 1e-4
        base: tuple = ()
        if manifest.default_max_length > manifest.max_positions:   # tiny test models: short positions
            base = (("max_length", manifest.max_positions),)
        if manifest.family == ENCODER:
            targets.append(Target(name, base, tolerance))
            continue
        tolerance = max(tolerance, 1e-3)
        targets += [Target(name, base, tolerance), Target(name, base + (("prompt", LLM_PROMPT),), tolerance)]
        layers = manifest.llm.get("cutoff_layers") or manifest.llm.get("layers") or []
        if isinstance(layers, list) and layers:
            targets.append(Target(name, base + (("cutoff_layers", [int(layers[0])]),), tolerance))
    return targets
