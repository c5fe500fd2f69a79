"""Configurations to compare: a served model, its scoring options and the way in (SDK over
gRPC/HTTP, or a TEI / Cohere rerank endpoint), from the command line or a YAML file.

Command line, one `--config` each, URL-shaped so that lists need no quoting:

    grpc://localhost:8001?model=bge-reranker-v2-minicpm-layerwise&cutoff_layers=28|40
    http://localhost:8000?model=bge-reranker-v2-m3&tokenize=server
    tei://localhost:8080?model=bge-reranker-v2-m3            (POST /rerank; tei+https:// for TLS)
    cohere://localhost:8080/v1/rerank?model=bge-reranker-v2-m3

`a|b|c` sweeps an option: one configuration per value. YAML: {defaults: {...}, configurations:
[{via, url, model, <options>, sweep: {option: [values]}}, ...]}.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml

from reranker_core.families import COMPRESS_LAYERS, COMPRESS_RATIO, CUTOFF_LAYERS, PROMPT
from reranker_core.options import (
    LONG_PASSAGE_POLICIES,
    LONG_PASSAGES,
    MAX_LENGTH,
    MAX_WINDOW,
    QUERY_MAX_LENGTH,
    WINDOW_STRIDE,
)
from reranker_eval.errors import EvalError

SDK_VIAS = ("grpc", "http")  # reranker_client.RerankerClient, protocol = via
HTTP_VIAS = ("tei", "cohere")  # any server speaking these rerank APIs
VIAS = SDK_VIAS + HTTP_VIAS
DEFAULT_PATHS = {"tei": "/rerank", "cohere": "/v1/rerank"}
TOKENIZE_MODES = ("auto", "client", "server")

INT_OPTIONS = (COMPRESS_RATIO, MAX_LENGTH, QUERY_MAX_LENGTH, WINDOW_STRIDE)
LIST_OPTIONS = (CUTOFF_LAYERS, COMPRESS_LAYERS)
STRING_OPTIONS = (LONG_PASSAGES, PROMPT)
SCORING_OPTIONS = LIST_OPTIONS + INT_OPTIONS + STRING_OPTIONS
# Keys that set up the connection rather than the scoring.
SETTINGS = (
    "via",
    "url",
    "model",
    "label",
    "group",
    "tokenize",
    "model_repository",
    "tokenizer_path",
    "batch_size",
    "timeout_s",
    "api_key_env",
)
KEYS = SETTINGS + SCORING_OPTIONS


@dataclass(frozen=True)
class Configuration:
    """One row of the comparison. `options` are the scoring options sent with every request."""

    via: str
    url: str  # host:port (SDK) or the endpoint's full http(s) URL (tei, cohere)
    model: str | None
    options: tuple[tuple[str, Any], ...] = ()
    label: str = ""
    group: str = ""  # configurations compared for score agreement (default: the model)
    tokenize: str = "auto"
    model_repository: str | None = None
    tokenizer_path: str | None = None
    batch_size: int | None = None  # at most this many passages per request (default: all of a query's)
    timeout_s: float = 120.0
    api_key_env: str | None = None  # environment variable holding a bearer token

    @property
    def option_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.options}

    @property
    def key(self) -> str:
        """Identifies the scores this configuration produces (label and group excluded): the cache key."""
        ident = {
            "via": self.via,
            "url": self.url,
            "model": self.model,
            "options": self.option_dict,
            "tokenize": self.tokenize if self.via in SDK_VIAS else None,
            "batch_size": self.batch_size,
        }
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        """What the report records of this configuration."""
        out: dict[str, Any] = {"via": self.via, "url": self.url, "model": self.model, **self.option_dict}
        if self.via in SDK_VIAS:
            out["tokenize"] = self.tokenize
        if self.batch_size:
            out["batch_size"] = self.batch_size
        return out

    def fullness(self) -> tuple[float, ...]:
        """Orders configurations of one model from the most reduced to the fullest: deepest
        cutoff layer, least compression, longest max_length, max_window over truncation
        (an option left out is the model's default, its fullest)."""
        opts = self.option_dict
        cutoff = max(opts[CUTOFF_LAYERS]) if opts.get(CUTOFF_LAYERS) else math.inf
        ratio = opts.get(COMPRESS_RATIO) or 1
        max_length = opts.get(MAX_LENGTH) or math.inf
        window = 1.0 if opts.get(LONG_PASSAGES) == MAX_WINDOW else 0.0
        return (cutoff, -ratio, max_length, window)


def _int(value: Any, key: str, where: str) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EvalError(f"{where}: {key} must be a positive integer, not {value!r}")
    return value


def _option(key: str, value: Any, where: str) -> Any:
    """A typed, hashable option value."""
    if key in LIST_OPTIONS:
        if isinstance(value, str):
            parts = [p for p in value.strip().strip("[]").replace(" ", ",").split(",") if p]
            value = parts if len(parts) != 1 else parts[0]
        items = value if isinstance(value, list | tuple) else [value]
        if not items:
            raise EvalError(f"{where}: {key} is empty")
        ints = tuple(_int(v, key, where) for v in items)
        return ints
    if key in INT_OPTIONS:
        return _int(value, key, where)
    if not isinstance(value, str):
        raise EvalError(f"{where}: {key} must be a string, not {value!r}")
    if key == LONG_PASSAGES and value not in LONG_PASSAGE_POLICIES:
        raise EvalError(f"{where}: long_passages must be one of {', '.join(LONG_PASSAGE_POLICIES)}")
    return value


def _endpoint(via: str, url: str, where: str) -> str:
    """host:port for the SDK; a full URL with the API's default path for tei and cohere."""
    if not url:
        raise EvalError(f"{where}: no url")
    if via in SDK_VIAS:
        if "://" in url:
            raise EvalError(f"{where}: the SDK takes host:port, not {url!r}")
        return url
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EvalError(f"{where}: {url!r} is not an http(s) URL")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATHS[via]
    return f"{parts.scheme}://{parts.netloc}{path}"


def default_label(via: str, model: str | None, options: Iterable[tuple[str, Any]], tokenize: str) -> str:
    """e.g. 'bge-reranker-v2-m3 max_length=256 (grpc)'."""
    parts = [model or via]
    for key, value in options:
        shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
        parts.append(f"{key}={shown}")
    paths = {"client": "token path", "server": "text path"}
    way = f"{via}, {paths[tokenize]}" if via in SDK_VIAS and tokenize in paths else via
    return " ".join(parts) + f" ({way})"


def build(raw: Mapping[str, Any], where: str) -> Configuration:
    """A Configuration from a mapping of KEYS (no sweep)."""
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise EvalError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}")
    via = str(raw.get("via", "grpc"))
    if via not in VIAS:
        raise EvalError(f"{where}: via must be one of {', '.join(VIAS)}, not {via!r}")
    model = raw.get("model")
    if via in SDK_VIAS and not model:
        raise EvalError(f"{where}: the SDK ({via}) needs a model name")
    tokenize = str(raw.get("tokenize", "auto"))
    if tokenize not in TOKENIZE_MODES:
        raise EvalError(f"{where}: tokenize must be one of {', '.join(TOKENIZE_MODES)}")
    options = tuple(
        (key, _option(key, raw[key], where)) for key in SCORING_OPTIONS if key in raw and raw[key] is not None
    )
    batch_size = _int(raw["batch_size"], "batch_size", where) if raw.get("batch_size") is not None else None
    timeout = float(raw.get("timeout_s", 120.0))
    url = _endpoint(via, str(raw.get("url") or ("localhost:8001" if via == "grpc" else "")), where)
    label = str(raw.get("label") or default_label(via, model, options, tokenize))
    return Configuration(
        via=via,
        url=url,
        model=str(model) if model else None,
        options=options,
        label=label,
        group=str(raw.get("group") or model or url),
        tokenize=tokenize,
        model_repository=raw.get("model_repository"),
        tokenizer_path=raw.get("tokenizer_path"),
        batch_size=batch_size,
        timeout_s=timeout,
        api_key_env=raw.get("api_key_env"),
    )


def expand(raw: Mapping[str, Any], sweep: Mapping[str, list[Any]], where: str) -> list[Configuration]:
    """One configuration per combination of the `sweep` values (a product, in the given order)."""
    for key, values in sweep.items():
        if key not in SCORING_OPTIONS:
            raise EvalError(f"{where}: cannot sweep {key!r}; sweepable: {', '.join(SCORING_OPTIONS)}")
        if not isinstance(values, list) or not values:
            raise EvalError(f"{where}: sweep of {key} must be a non-empty list")
    if "label" in raw and sweep:
        raise EvalError(f"{where}: a swept configuration takes no label (each point gets its own)")
    keys = list(sweep)
    return [build({**raw, **dict(zip(keys, combo))}, where) for combo in itertools.product(*sweep.values())]


def from_spec(spec: str) -> list[Configuration]:
    """Configurations from one command-line spec `via://host:port[/path]?key=value&...`
    (`tei+https://` for TLS; `a|b` sweeps an option)."""
    where = f"--config {spec!r}"
    parts = urlsplit(spec)
    scheme, _, tls = parts.scheme.partition("+")
    if scheme not in VIAS or tls not in ("", "https"):
        raise EvalError(
            f"{where}: start with one of {', '.join(s + '://' for s in VIAS)} (or tei+https://, ...)"
        )
    raw: dict[str, Any] = {"via": scheme}
    if scheme in SDK_VIAS:
        raw["url"] = parts.netloc
    else:
        raw["url"] = f"{tls or 'http'}://{parts.netloc}{parts.path}"
    sweep: dict[str, list[Any]] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key in raw and key != "via":
            raise EvalError(f"{where}: {key} given twice")
        if key in SCORING_OPTIONS and "|" in value and key != PROMPT:
            sweep[key] = value.split("|")
        else:
            raw[key] = value
    return expand(raw, sweep, where)


def from_yaml(path: Path) -> list[Configuration]:
    """Configurations from a YAML file: {defaults: {...}, configurations: [...]}."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise EvalError(f"{path}{line}: malformed YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("configurations"), list):
        raise EvalError(f"{path}: expected a mapping with a 'configurations' list")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise EvalError(f"{path}: 'defaults' must be a mapping")
    unknown = sorted(set(doc) - {"defaults", "configurations"})
    if unknown:
        raise EvalError(f"{path}: unknown top-level key(s) {', '.join(unknown)}")
    out: list[Configuration] = []
    for i, item in enumerate(doc["configurations"]):
        where = f"{path}: configurations[{i}]"
        if not isinstance(item, dict):
            raise EvalError(f"{where}: expected a mapping")
        item = {**defaults, **item}
        sweep = item.pop("sweep", None) or {}
        if not isinstance(sweep, dict):
            raise EvalError(f"{where}: 'sweep' must be a mapping of option -> list of values")
        out += expand(item, sweep, where)
    return out


def check_unique(configs: list[Configuration]) -> None:
    """Labels name rows, plot points and run files: they must differ; so must the configurations."""
    labels: dict[str, Configuration] = {}
    keys: dict[str, str] = {}
    for config in configs:
        if config.label in labels:
            raise EvalError(f"two configurations are labelled {config.label!r}: give each its own label")
        if config.key in keys:
            raise EvalError(f"configurations {keys[config.key]!r} and {config.label!r} are the same")
        labels[config.label], keys[config.key] = config, config.label
    if not configs:
        raise EvalError("no configuration to evaluate: give --config or --configs")


def api_key(config: Configuration) -> str | None:
    """The bearer token named by api_key_env (EvalError if that variable is unset)."""
    if not config.api_key_env:
        return None
    value = os.environ.get(config.api_key_env)
    if not value:
        raise EvalError(f"{config.label}: environment variable {config.api_key_env} is not set")
    return value
