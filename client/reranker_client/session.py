"""What both clients do around the transport, without I/O: connect (probe the model, read its
manifest, load the tokenizer) and score (send the planned requests)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reranker_client.errors import (
    InvalidInputError,
    ModelNotReadyError,
    TokenizerMismatchError,
    caller_errors,
)
from reranker_client.ops import Flow, InferAll, InferRequest, probe_model
from reranker_client.scoring import Scores, ScoringCore
from reranker_client.settings import ConnectionSettings
from reranker_client.text_scoring import DEFAULT_MAX_PAIRS, TextScoringCore, config_int
from reranker_client.tokenizer_source import load_tokenizer
from reranker_core.endpoints import EndpointStatus
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES
from reranker_core.manifest import ModelManifest
from reranker_core.scores import ranking
from reranker_core.tensors import MANIFEST_PARAMETER, TOKEN_MODEL_PARAMETER, text_model_name
from reranker_core.texts import check_text, positive_int

Core = ScoringCore | TextScoringCore


@dataclass(frozen=True)
class RerankResult:
    index: int  # position of the passage in the list given to rerank()
    score: float
    passage: str


TOKENIZE_MODES = ("auto", "client", "server")


@dataclass(frozen=True)
class ScoringOptions:
    """Client-side options of both clients (see RerankerClient)."""

    tokenizer_path: str | None = None
    model_repository: str | None = None
    max_request_tokens: int = CLIENT_MAX_REQUEST_TOKENS
    max_text_bytes: int = MAX_TEXT_BYTES
    tokenize: str = "auto"

    def __post_init__(self) -> None:
        if self.tokenize not in TOKENIZE_MODES:
            raise InvalidInputError(
                f"tokenize must be one of {', '.join(TOKENIZE_MODES)}, got {self.tokenize!r}"
            )
        with caller_errors():
            positive_int(self.max_request_tokens, "max_request_tokens")
            positive_int(self.max_text_bytes, "max_text_bytes")


def manifest_json_from_config(config: dict[str, Any]) -> str | None:
    param = (config.get("parameters") or {}).get(MANIFEST_PARAMETER)
    return param.get("string_value") if isinstance(param, dict) else None


def manifest_from_config(config: dict[str, Any], model: str) -> tuple[ModelManifest, int]:
    """The manifest and max_batch_size of a served model's config."""
    text = manifest_json_from_config(config)
    if not text:
        raise ModelNotReadyError(
            f"model {model!r} has no reranker manifest in its config: it was not exported by this project"
        )
    return ModelManifest.from_json(text), int(config.get("max_batch_size") or 1)


def served_models(config: dict[str, Any], probed: str) -> tuple[str, str]:
    """(token model, text model) around the model named `probed`, which may be either: a text
    model names its token model (config parameter token_model, or the manifest's); a token
    model's text model is the manifest's text_model or, by the export's convention, `<name>-text`."""
    raw = json.loads(manifest_json_from_config(config) or "{}")
    param = (config.get("parameters") or {}).get(TOKEN_MODEL_PARAMETER)
    token_model = (
        raw.get("token_model") or (param.get("string_value") if isinstance(param, dict) else "") or probed
    )
    if token_model != probed:
        return token_model, probed
    return token_model, raw.get("text_model") or text_model_name(token_model)


def connect_flow(settings: ConnectionSettings, options: ScoringOptions) -> Flow[Core]:
    """Probe the model, read its manifest, and pick how to tokenize: with the tokenizer it was
    exported with (tokenize="client"), or by its text model on the server ("server"). "auto":
    the tokenizer when it is at hand without a download (local files, hub cache), else the text
    model when the server has one, else the tokenizer from the hub.
    `model_version` applies to the model the caller named; the other one is served by policy."""
    config = yield from probe_model(settings.url, settings.model, settings.model_version)
    manifest, max_batch_size = manifest_from_config(config, settings.model)
    token_model, text_model = served_models(config, settings.model)
    versions = {settings.model: settings.model_version}

    def local_tokenizer(hub: str):
        return load_tokenizer(
            manifest,
            tokenizer_path=options.tokenizer_path,
            model_repository=options.model_repository,
            hub=hub,
        )

    tokenizer, text_config, missing = None, None, None
    if options.tokenize == "client":
        tokenizer = local_tokenizer("download")
    elif options.tokenize == "auto":
        try:
            tokenizer = local_tokenizer("cache")
        except TokenizerMismatchError as exc:
            if options.tokenizer_path:  # a tokenizer was named and it is the wrong one
                raise
            missing = exc
    if tokenizer is None:
        if text_model == settings.model:
            text_config = config
        else:
            try:
                text_config = yield from probe_model(settings.url, text_model, "")
            except ModelNotReadyError as exc:
                if options.tokenize == "server":
                    raise ModelNotReadyError(
                        f"model {settings.model!r} has no text model {text_model!r} on "
                        f"{settings.url} (tokenize='server'): {exc}"
                    ) from exc
                try:  # auto: last resort, the hub
                    tokenizer = local_tokenizer("download")
                except TokenizerMismatchError as hub_exc:
                    raise TokenizerMismatchError(
                        f"{hub_exc}; and the server has no text model "
                        f"{text_model!r} to tokenize for this client"
                    ) from missing
    if tokenizer is not None:
        if token_model != settings.model:
            config = yield from probe_model(settings.url, token_model, "")
            max_batch_size = manifest_from_config(config, token_model)[1]
        return ScoringCore(
            manifest,
            tokenizer,
            max_batch_size=max_batch_size,
            max_request_tokens=options.max_request_tokens,
            max_text_bytes=options.max_text_bytes,
            model=token_model,
            version=versions.get(token_model, ""),
        )
    return TextScoringCore(
        manifest,
        text_model,
        versions.get(text_model, ""),
        max_pairs=config_int(text_config, "max_pairs", DEFAULT_MAX_PAIRS),
        max_text_bytes=options.max_text_bytes,
        server_max_text_bytes=config_int(text_config, "max_text_bytes", 0) or None,
    )


def infer_flow(core: Core, requests: Sequence[InferRequest]) -> Flow[list[dict[str, Any]]]:
    """All requests' outputs, or one error (the caller retries the whole flow: never partial results)."""
    return (yield InferAll(core.model, core.version, tuple(requests)))


def rank(passages: Sequence[str], scores: list[float], top_n: int | None) -> list[RerankResult]:
    return [RerankResult(i, scores[i], passages[i]) for i in ranking(scores, top_n)]


def rerank_pairs(query: Any, passages: Any, top_n: Any, max_text_bytes: int) -> list[list[str]]:
    with caller_errors():
        check_text(query, "query", max_text_bytes)
        positive_int(top_n, "top_n")
    if isinstance(passages, (str, bytes)) or not isinstance(passages, Sequence) or not passages:
        raise InvalidInputError("passages must be a non-empty list of strings")
    return [[query, p] for p in passages]


def single_column(scores: Scores) -> list[float]:
    if scores and isinstance(scores[0], list):
        raise InvalidInputError("rerank needs one score per passage: give a single cutoff layer")
    return scores  # type: ignore[return-value]


class ClientState:
    """What the sync and asyncio clients expose about the model they score with."""

    _core: Core
    _transport: Any

    @property
    def endpoints(self) -> list[EndpointStatus]:
        """The replicas this client sends to, with their state ("live", "ejected", "pending"),
        requests in flight and counters; for logs."""
        return self._transport.endpoints()

    @property
    def manifest(self) -> ModelManifest:
        return self._core.manifest

    @property
    def tokenize(self) -> str:
        """Where pairs are tokenized: "client" (here) or "server" (the model's text model)."""
        return self._core.tokenize
