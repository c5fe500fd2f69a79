"""One export writes two models, `<name>` (token ids) and `<name>-text` (text); each one's manifest,
in reranker.json and in every config, names the other, so a client that names either model with
tokenize="server" (or "auto" without the tokenizer) finds the text model, and one that tokenizes
finds the token model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2

from export.__main__ import main as export_main
from export.tiny import build_tiny
from reranker_client.session import served_models
from reranker_core.families import ENCODER, GEMMA
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import MANIFEST_PARAMETER


def served_configs(model_dir: Path) -> list[dict]:
    """Each of the model directory's Triton configs as the server reports it (JSON: parameters
    as {"key": {"string_value": ...}})."""
    paths = [model_dir / "config.pbtxt", *sorted((model_dir / "configs").glob("*.pbtxt"))]
    return [
        json_format.MessageToDict(
            text_format.Parse(p.read_text(), model_config_pb2.ModelConfig()), preserving_proto_field_name=True
        )
        for p in paths
        if p.exists()
    ]


@pytest.mark.parametrize("family", [ENCODER, GEMMA])
def test_token_and_text_models_name_each_other(family, tmp_path):
    checkpoint = build_tiny(family, tmp_path / "ckpt")
    repo = tmp_path / "repo"
    assert export_main(["--model", str(checkpoint), "--name", "m", "--repository", str(repo)]) == 0
    token, text = ModelManifest.load(repo / "m"), ModelManifest.load(repo / "m-text")
    assert (token.text_model, token.token_model) == ("m-text", "")
    assert (text.text_model, text.token_model) == ("m-text", "m")
    for model in ("m", "m-text"):
        configs = served_configs(repo / model)
        assert configs, f"{model} has no config"
        for config in configs:
            manifest = json.loads(config["parameters"][MANIFEST_PARAMETER]["string_value"])
            assert (manifest["text_model"], manifest["token_model"] or "m") == ("m-text", "m")
            assert manifest["tokenizer"] == json.loads(token.to_json())["tokenizer"]
            # What the client makes of a served model's config, whichever of the two it probed.
            assert served_models(config, model) == ("m", "m-text")
