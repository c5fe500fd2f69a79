"""What a Python-backend model reads from Triton: its config, parameters and manifest at
initialize, and a request's inputs and parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from reranker_core.errors import InputError
from reranker_core.manifest import ModelManifest
from reranker_core.tensors import MANIFEST_PARAMETER


def config_parameters(model_config: dict[str, Any]) -> dict[str, str]:
    """The `parameters { key value { string_value } }` of a model config as a plain dict."""
    return {k: v.get("string_value", "") for k, v in (model_config.get("parameters") or {}).items()}


def load_manifest(args: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str], ModelManifest]:
    """Model config, its parameters and the reranker manifest from `initialize(args)`."""
    model_config = json.loads(args["model_config"])
    params = config_parameters(model_config)
    if MANIFEST_PARAMETER not in params:
        raise ValueError(f"model config has no '{MANIFEST_PARAMETER}' parameter; re-export the model")
    return model_config, params, ModelManifest.from_json(params[MANIFEST_PARAMETER])


def version_dir(args: dict[str, Any]) -> Path:
    return Path(args["model_repository"]) / str(args["model_version"])


def request_parameters(request: Any) -> dict[str, Any]:
    """Per-request parameters sent by the client (empty dict when none); InputError when they are
    not a JSON object."""
    raw = request.parameters()
    try:
        params = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise InputError(f"request parameters are not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise InputError("request parameters must be a JSON object")
    return params


def input_array(request: Any, name: str) -> np.ndarray | None:
    """The request's input `name` as numpy, None when it was not sent."""
    import triton_python_backend_utils as pb_utils

    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()
