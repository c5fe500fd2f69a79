"""tokenize="client"|"server"|"auto": which model the client talks to and what it sends, decided by
the shared connect flow (driven here by a scripted executor), and the text-model requests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from reranker_client.errors import InvalidInputError, ModelNotReadyError, TokenizerMismatchError
from reranker_client.ops import InferAll, ModelConfig, ModelReady, RepositoryIndex, ServerLive, drive
from reranker_client.scoring import ScoringCore
from reranker_client.session import ScoringOptions, connect_flow, served_models
from reranker_client.settings import ConnectionSettings
from reranker_client.text_scoring import TextScoringCore
from reranker_core.families import ENCODER, MINICPM_LAYERWISE
from reranker_core.manifest import ModelManifest

NAME = "rr"
TEXT = "rr-text"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> tuple[Path, object]:
    from export.tiny.tokenizer_builder import build_xlmr_tokenizer
    from export.tokenizer_files import copy_tokenizer

    ckpt = build_xlmr_tokenizer(tmp_path_factory.mktemp("tok"))
    model_dir = tmp_path_factory.mktemp("repo") / NAME
    info = copy_tokenizer(Path(ckpt), model_dir, NAME)
    return model_dir.parent, info


def manifest_json(
    info, *, family: str = ENCODER, text_model: str = TEXT, token_model: str = "", source: str = ""
) -> str:
    info = type(info)(**{**info.__dict__, "source": source})
    manifest = ModelManifest(family=family, name=NAME, tokenizer=info, max_positions=64, source=source)
    data = json.loads(manifest.to_json())
    data.update({k: v for k, v in (("text_model", text_model), ("token_model", token_model)) if v})
    return json.dumps(data)


def config(manifest: str, **params: str) -> dict:
    """A model config as the server returns it, with `params` as config parameters."""
    parameters = {"reranker_manifest": {"string_value": manifest}}
    parameters.update({k: {"string_value": v} for k, v in params.items()})
    return {"max_batch_size": 8, "parameters": parameters}


def run_connect(configs: dict, tokenize: str, **options):
    """connect_flow against a server holding `configs` (name -> config); returns (core, probed)."""
    probed = []

    def execute(op):
        if isinstance(op, ServerLive):
            return True
        if isinstance(op, ModelReady):
            probed.append(op.model)
            return op.model in configs
        if isinstance(op, RepositoryIndex):
            return [{"name": n, "version": "1", "state": "READY"} for n in configs]
        if isinstance(op, ModelConfig):
            return configs[op.model]
        raise AssertionError(op)

    settings = ConnectionSettings.create("h:1", "grpc", options.pop("model", NAME))
    core = drive(connect_flow(settings, ScoringOptions(tokenize=tokenize, **options)), execute, "h:1", NAME)
    return core, probed


def test_served_models_from_either_side(tokenizer_dir):
    _, info = tokenizer_dir
    assert served_models(config(manifest_json(info, text_model="")), NAME) == (NAME, TEXT)  # by convention
    assert served_models(config(manifest_json(info, text_model="other")), NAME) == (NAME, "other")
    assert served_models(config(manifest_json(info, text_model=""), token_model=NAME), TEXT) == (NAME, TEXT)
    assert served_models(config(manifest_json(info, token_model=NAME)), TEXT) == (NAME, TEXT)


def test_auto_tokenizes_locally_when_the_tokenizer_is_at_hand(tokenizer_dir):
    repo, info = tokenizer_dir
    core, probed = run_connect(
        {NAME: config(manifest_json(info)), TEXT: config(manifest_json(info))},
        "auto",
        model_repository=str(repo),
    )
    assert isinstance(core, ScoringCore) and core.tokenize == "client" and core.model == NAME
    assert probed == [NAME]


def test_auto_sends_text_when_the_tokenizer_is_not_at_hand(tokenizer_dir):
    _, info = tokenizer_dir
    text_config = config(manifest_json(info, token_model=NAME), max_pairs="7", max_text_bytes="1000")
    core, probed = run_connect(
        {NAME: config(manifest_json(info, source="BAAI/not-cached")), TEXT: text_config}, "auto"
    )
    assert isinstance(core, TextScoringCore) and core.tokenize == "server" and core.model == TEXT
    assert probed == [NAME, TEXT] and core.max_pairs == 7 and core.max_text_bytes == 1000


def test_naming_the_text_model_and_tokenizing_locally_sends_to_the_token_model(tokenizer_dir):
    repo, info = tokenizer_dir
    configs = {NAME: config(manifest_json(info)), TEXT: config(manifest_json(info, token_model=NAME))}
    core, probed = run_connect(configs, "client", model=TEXT, model_repository=str(repo))
    assert core.model == NAME and probed == [TEXT, NAME]
    core, probed = run_connect(configs, "server", model=TEXT, model_repository=str(repo))
    assert core.model == TEXT and probed == [TEXT]


def test_client_mode_needs_the_tokenizer(tokenizer_dir):
    _, info = tokenizer_dir
    configs = {NAME: config(manifest_json(info)), TEXT: config(manifest_json(info, token_model=NAME))}
    with pytest.raises(TokenizerMismatchError, match="no tokenizer matching"):
        run_connect(configs, "client")


def test_server_mode_needs_a_text_model(tokenizer_dir):
    repo, info = tokenizer_dir
    with pytest.raises(ModelNotReadyError, match="has no text model 'rr-text'"):
        run_connect({NAME: config(manifest_json(info))}, "server", model_repository=str(repo))


def test_auto_with_neither_tokenizer_nor_text_model_names_both(tokenizer_dir):
    _, info = tokenizer_dir
    with pytest.raises(TokenizerMismatchError, match="no tokenizer matching.*no text model 'rr-text'"):
        run_connect({NAME: config(manifest_json(info))}, "auto")


def test_auto_without_a_text_model_still_downloads_the_tokenizer(tokenizer_dir, monkeypatch):
    """A server without text models keeps working for a host with hub access."""
    _, info = tokenizer_dir
    import reranker_client.tokenizer_source as source

    hub_modes = []

    def fake_hub(repo_id, local_only):
        hub_modes.append(local_only)
        return None if local_only else tokenizer_dir[0] / NAME / info.file

    monkeypatch.setattr(source, "_from_hub", fake_hub)
    core, probed = run_connect({NAME: config(manifest_json(info, source="BAAI/x"))}, "auto")
    assert core.tokenize == "client" and hub_modes == [True, False] and probed == [NAME, TEXT]


def test_bad_tokenize_mode_is_rejected():
    with pytest.raises(InvalidInputError, match="tokenize must be one of auto, client, server"):
        ScoringOptions(tokenize="local")


# --- text-model requests -----------------------------------------------------------------------------


def text_core(family: str = ENCODER, max_pairs: int = 1000) -> TextScoringCore:
    from reranker_core.manifest import TokenizerInfo

    manifest = ModelManifest(family=family, name=NAME, tokenizer=TokenizerInfo(sha256="0"), max_positions=64)
    return TextScoringCore(manifest, TEXT, "", max_pairs=max_pairs)


def decoded(tensor) -> list[str]:
    return [b.decode("utf-8") for b in tensor.data.tolist()]


def test_rerank_shape_sends_the_query_once_and_pairs_shape_sends_each():
    core = text_core()
    plan = core.plan([["q", "p1"], ["q", "p2 ü"]], max_length=64, query_max_length=None, batch_size=None)
    (request,) = plan.requests
    assert [(t.name, t.datatype, decoded(t)) for t in request.inputs] == [
        ("query", "BYTES", ["q"]),
        ("passages", "BYTES", ["p1", "p2 ü"]),
    ]
    assert request.parameters == {"max_length": 64, "query_max_length": 48} and request.outputs == ("scores",)
    plan = core.plan([["q1", "p1"], ["q2", "p2"]], max_length=None, query_max_length=None, batch_size=None)
    assert [t.name for t in plan.requests[0].inputs] == ["queries", "passages"]
    assert plan.requests[0].parameters == {"max_length": 512, "query_max_length": 384}


def test_requests_are_chunked_by_batch_size_and_max_pairs_and_scores_come_back_in_order():
    core = text_core(max_pairs=3)
    pairs = [[f"q{i}", f"p{i}"] for i in range(8)]
    plan = core.plan(pairs, max_length=None, query_max_length=None, batch_size=None)
    assert plan.chunks == [(0, 3), (3, 6), (6, 8)]
    assert text_core().plan(pairs, max_length=None, query_max_length=None, batch_size=5).chunks == [
        (0, 5),
        (5, 8),
    ]
    answers = [{"scores": np.arange(a, b, dtype=np.float32).reshape(1, -1)} for a, b in plan.chunks]
    assert core.collect(plan, answers, normalize=False) == [float(i) for i in range(8)]
    assert core.collect(plan, answers, normalize=True)[0] == pytest.approx(0.5)


def test_several_cutoff_layers_give_one_list_per_layer():
    core = text_core(MINICPM_LAYERWISE)
    plan = core.plan(
        [["q", "a"], ["q", "b"]],
        max_length=None,
        query_max_length=None,
        batch_size=None,
        cutoff_layers=[8, 9],
        prompt="Yes?",
    )
    assert plan.requests[0].parameters == {
        "max_length": 512,
        "query_max_length": 384,
        "cutoff_layers": "[8, 9]",
        "prompt": "Yes?",
    }
    scores = core.collect(plan, [{"scores": np.array([[1, 2], [3, 4]], np.float32)}], normalize=False)
    assert scores == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cutoff_layers": [8]}, "unknown option"),
        ({"max_length": 0}, "max_length"),
        ({"batch_size": "2"}, "batch_size"),
    ],
)
def test_text_mode_checks_arguments_like_client_mode(kwargs, message):
    args = {"max_length": None, "query_max_length": None, "batch_size": None, **kwargs}
    with pytest.raises(InvalidInputError, match=message):
        text_core().plan([["q", "p"]], **args)


def test_infer_goes_to_the_core_model():
    from reranker_client.session import infer_flow

    seen = []
    core = text_core()
    plan = core.plan([["q", "p"]], max_length=None, query_max_length=None, batch_size=None)
    drive(infer_flow(core, plan.requests), lambda op: seen.append(op) or [{}], "h:1", NAME)
    assert isinstance(seen[0], InferAll) and seen[0].model == TEXT
