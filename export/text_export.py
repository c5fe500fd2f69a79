"""Write the text-facing model `<name>-text` next to an exported token model `<name>`.

<repository>/<name>-text/
  config.pbtxt     Python backend (BLS) on CPU: BYTES query/queries/passages -> scores, indices
  1/model.py       imports reranker_server.text_model.TritonPythonModel
  tokenizer/       a copy of the token model's tokenizer (the text model never reads the hub)
  reranker.json    the token model's manifest, naming the token model this one calls
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from export.fill_template import fill_template, pbtxt_string
from reranker_core.limits import CLIENT_MAX_REQUEST_TOKENS, MAX_TEXT_BYTES, TEXT_MODEL_MAX_PAIRS
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import text_model_name

MODEL_PY = "from reranker_server.text_model import TritonPythonModel  # noqa: F401\n"
DEFAULT_TEXT_INSTANCES = 2  # tokenization of one request overlaps the token model's work on another


def text_model_dir(token_model_dir: Path) -> Path:
    return token_model_dir.parent / text_model_name(token_model_dir.name)


def export_text_model(
    token_model_dir: Path,
    *,
    instance_count: int = DEFAULT_TEXT_INSTANCES,
    max_pairs: int = TEXT_MODEL_MAX_PAIRS,
) -> Path:
    """Write `<name>-text` for the token model exported at `token_model_dir`; returns its directory."""
    out = text_model_dir(token_model_dir)
    manifest = replace(
        ModelManifest.load(token_model_dir), text_model=out.name, token_model=token_model_dir.name
    )
    if out.exists():
        shutil.rmtree(out)
    (out / "1").mkdir(parents=True)
    (out / "1" / "model.py").write_text(MODEL_PY)
    shutil.copytree(token_model_dir / "tokenizer", out / "tokenizer")
    manifest.save(out)
    (out / "config.pbtxt").write_text(
        fill_template(
            "python_text",
            {
                "name": out.name,
                "token_model": token_model_dir.name,
                "family": manifest.family,
                "instance_count": instance_count,
                "max_pairs": max_pairs,
                "max_text_bytes": MAX_TEXT_BYTES,
                "max_request_tokens": CLIENT_MAX_REQUEST_TOKENS,
                "manifest": pbtxt_string(manifest.to_json()),
            },
        )
    )
    return out
