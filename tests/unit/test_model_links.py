"""One export writes two models, `<name>` (token ids) and `<name>-text` (text); each one's manifest,
in reranker.json and in every config, names the other, so a client that names either model with
tokenize="server" (or "auto" without the tokenizer) finds the text model, and one that tokenizes
finds the token model."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from export.__main__ import main as export_main
from export.tiny import build_tiny
from reranker_client.session import served_models
from reranker_core.families import ENCODER, GEMMA
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import MANIFEST_PARAMETER


def config_manifests(model_dir: Path) -> list[str]:
    """The manifest JSON embedded in each of the model directory's Triton configs."""
    configs = [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]
    out = []
    for path in configs:
        if path.exists():
            config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
            out.append(config.parameters[MANIFEST_PARAMETER].string_value)
    return out


@pytest.mark.parametrize("family", [ENCODER, GEMMA])
def test_token_and_text_models_name_each_other(family, tmp_path):
    checkpoint = build_tiny(family, tmp_path / "ckpt")
    repo = tmp_path / "repo"
    assert export_main(["--model", str(checkpoint), "--name", "m", "--repository", str(repo)]) == 0
    token, text = ModelManifest.load(repo / "m"), ModelManifest.load(repo / "m-text")
    assert (token.text_model, token.token_model) == ("m-text", "")
    assert (text.text_model, text.token_model) == ("m-text", "m")
    for model in ("m", "m-text"):
        embedded = config_manifests(repo / model)
        assert embedded, f"{model} has no config"
        for manifest_json in embedded:
            # What the client reads off a served model's config, whichever of the two it probed.
            assert served_models(manifest_json, model) == ("m", "m-text")
            assert json.loads(manifest_json)["tokenizer"] == json.loads(token.to_json())["tokenizer"]
