"""Names on the wire: Triton tensors, request parameters, config parameters, model names."""

from __future__ import annotations

# Token model (one per exported reranker): what the Python SDK sends.
INPUT_IDS = "input_ids"  # INT64 [pairs, tokens]
ATTENTION_MASK = "attention_mask"  # INT64 [pairs, tokens]
SEGMENT_LENGTHS = "segment_lengths"  # INT64 [pairs, 2]: (query length, prompt length), lightweight only
SCORES = "scores"  # FP32 [pairs, k] (token model) / [k, pairs] (text model)
ENCODER_INPUTS = (INPUT_IDS, ATTENTION_MASK)  # an encoder graph's inputs (ONNX, TensorRT)

# Text model (`<name>-text`): UTF-8 text in, scores out; for callers in any language.
QUERY = "query"  # BYTES [1]: rerank shape
QUERIES = "queries"  # BYTES [n]: pairs shape, queries[i] with passages[i]
PASSAGES = "passages"  # BYTES [n]
INDICES = "indices"  # INT64 [m]: rerank shape, passages best first
TEXT_MODEL_SUFFIX = "-text"

# Config parameters (parameters { key: ... } in config.pbtxt).
MANIFEST_PARAMETER = "reranker_manifest"
TOKEN_MODEL_PARAMETER = "token_model"  # text model -> the token model it calls


def text_model_name(token_model: str) -> str:
    """The name of the text-facing model in front of `token_model`."""
    return token_model + TEXT_MODEL_SUFFIX
