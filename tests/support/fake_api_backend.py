"""An in-process stand-in for the Triton text model behind the rerank HTTP API (unit tests of
the HTTP layer only): deterministic raw logits (the API applies the sigmoid), switchable
failures, and a record of every call."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from reranker_api.backend import (
    BackendError,
    InvalidRequest,
    ModelInfo,
    ModelNotFound,
    Readiness,
)
from reranker_core.families import ENCODER, family_spec
from reranker_core.manifest import LLMSettings, ModelManifest, TokenizerInfo
from reranker_core.options import ScoreOptions

MAX_CHARS = 200  # "tokens" of the fake model: characters of query + passage
FAKE_LAYERS = 16  # layers of a fake decoder model


def fake_model(
    name: str, family: str = ENCODER, *, source: str = "", aliases: tuple[str, ...] | None = None
) -> ModelInfo:
    """A served model with a real manifest: the options the API checks against it are a real
    model's (decoder families: every layer can score, compression ratios 1/2/4/8)."""
    llm = None
    if family_spec(family).decoder:
        llm = LLMSettings.for_family(
            family,
            num_hidden_layers=FAKE_LAYERS,
            cutoff_layers=list(range(1, FAKE_LAYERS + 1)),
            compress_ratios=[1, 2, 4, 8],
        )
    manifest = ModelManifest(
        family=family,
        name=name,
        tokenizer=TokenizerInfo(sha256="0" * 64),
        max_positions=MAX_CHARS,
        default_max_length=MAX_CHARS,
        source=source,
        llm=llm,
    )
    hub = (manifest.hub_id,) if manifest.hub_id else ()
    return ModelInfo(name, aliases=(f"{name}-text", *hub) if aliases is None else aliases, manifest=manifest)


def fake_logit(query: str, passage: str) -> float:
    """Words shared by query and passage, minus a little per passage character: distinct, signed."""
    shared = len(set(query.lower().split()) & set(passage.lower().split()))
    return shared - 0.5 - len(passage) / 1000.0


@dataclass
class Call:
    model: str
    query: str
    passages: list[str]
    options: ScoreOptions | None
    timeout_s: float | None


@dataclass
class FakeBackend:
    models_served: list[ModelInfo] = field(
        default_factory=lambda: [fake_model("fake-reranker", source="BAAI/fake-reranker")]
    )
    fail_with: BackendError | None = None
    delay_s: float = 0.0
    ready: bool = True
    fixed_scores: list[float] | None = None
    calls: list[Call] = field(default_factory=list)
    closed: bool = False

    async def score(
        self,
        model: str,
        query: bytes,
        passages: Sequence[bytes],
        options: ScoreOptions | None,
        timeout_s: float | None,
    ) -> np.ndarray:
        q, ps = query.decode("utf-8"), [p.decode("utf-8") for p in passages]
        self.calls.append(Call(model, q, ps, options, timeout_s))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_with is not None:
            raise self.fail_with
        limit = options.max_length if options else MAX_CHARS
        if options and not options.truncate:
            for i, p in enumerate(ps):
                if len(q) + len(p) > limit:
                    raise InvalidRequest(
                        f"passages[{i}]: the pair has {len(q) + len(p)} tokens, more than "
                        f"max_length {limit}, and truncation is off"
                    )
        logits = self.fixed_scores or [fake_logit(q[:limit], p[: max(0, limit - len(q))]) for p in ps]
        layers = options.cutoff_layers if options else None
        rows = [[x + 0.1 * k for x in logits] for k in range(len(layers))] if layers else [logits]
        return np.array(rows, dtype=np.float32)

    async def models(self) -> list[ModelInfo]:
        return list(self.models_served)

    async def resolve(self, name: str) -> ModelInfo:
        for m in self.models_served:
            if name == m.name or name in m.aliases:
                return m
        raise ModelNotFound(
            f"model {name!r} is not served here; served models: "
            + ", ".join(m.name for m in self.models_served)
        )

    async def readiness(self, model: str) -> Readiness:
        return Readiness(self.ready, "" if self.ready else f"model {model!r} is not ready on Triton")

    async def close(self) -> None:
        self.closed = True


def sigmoid(x: float) -> float:
    """The test's own reference: FlagEmbedding's normalize=True, written out."""
    return 1.0 / (1.0 + math.exp(-x))
