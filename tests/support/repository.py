"""The model repository the integration tests serve: tiny checkpoints of every family, exported
with the project's own exporter (python -m export), as users would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from export.tiny.encoder import build_xlmr_reranker
from export.tiny.trained import trained_encoder_checkpoint


@dataclass(frozen=True)
class TestModel:
    name: str  # served model name
    kind: str  # oracle kind: encoder | llm | layerwise | lightweight
    build: Callable[[Path], Path]  # writes the checkpoint into a directory
    export_args: tuple[str, ...] = ()
    checkpoint_name: str = ""  # models sharing a checkpoint name share one build

    @property
    def checkpoint(self) -> str:
        return self.checkpoint_name or self.name


ENCODER_MODELS = [
    TestModel("tiny-encoder", "encoder", lambda d: build_xlmr_reranker(d, seed=1)),
    TestModel(
        "tiny-encoder-fp16",
        "encoder",
        lambda d: build_xlmr_reranker(d, seed=1),
        ("--precision", "fp16", "--cpu-graph", "plain"),
        checkpoint_name="tiny-encoder",
    ),
    # 24 usable positions: FlagEmbedding's truncation paths with small max_length.
    TestModel(
        "tiny-encoder-short", "encoder", lambda d: build_xlmr_reranker(d, seed=2, max_position_embeddings=26)
    ),
]

# The trained tiny XLM-R (export/tiny/trained.py: scores that mean something), fp32 and bf16
# (OpenVINO; fp32 on a CPU without native bf16), for the precision tests.
TRAINED_MODELS = [
    TestModel("tiny-trained", "encoder", lambda d: trained_encoder_checkpoint()),
    TestModel(
        "tiny-trained-bf16",
        "encoder",
        lambda d: trained_encoder_checkpoint(),
        ("--cpu-graph", "bf16"),
        checkpoint_name="tiny-trained",
    ),
]

# Decoder-family models are appended by tests/support/llm_repository.py when present.
TEST_MODELS: list[TestModel] = ENCODER_MODELS + TRAINED_MODELS
try:
    from tests.support.llm_repository import LLM_MODELS

    TEST_MODELS += LLM_MODELS
except ImportError:
    pass


@dataclass
class BuiltRepository:
    root: Path
    checkpoints: dict[str, Path] = field(default_factory=dict)  # served name -> checkpoint dir

    def checkpoint(self, name: str) -> Path:
        return self.checkpoints[name]


def build_repository(
    root: Path, checkpoints_root: Path, models: list[TestModel] = TEST_MODELS
) -> BuiltRepository:
    """Build each checkpoint once and export every model into `root` with `python -m export`."""
    from export.__main__ import main as export_main

    built = BuiltRepository(root)
    by_checkpoint: dict[str, Path] = {}
    for model in models:
        if model.checkpoint not in by_checkpoint:
            by_checkpoint[model.checkpoint] = model.build(checkpoints_root / model.checkpoint)
        ckpt = by_checkpoint[model.checkpoint]
        code = export_main(
            [
                "--model",
                str(ckpt),
                "--name",
                model.name,
                "--repository",
                str(root),
                "--force",
                *model.export_args,
            ]
        )
        if code != 0:
            raise RuntimeError(f"export of {model.name} failed with exit code {code}")
        built.checkpoints[model.name] = ckpt
    return built
