"""File names in an exported model directory and in the checkpoints it holds."""

from __future__ import annotations

MANIFEST_FILE = "reranker.json"  # the model contract (reranker_core.manifest)
TOKENIZER_FILE = "tokenizer/tokenizer.json"  # relative to the model directory
CHECKPOINT_SUBDIR = "1/checkpoint"  # LLM families: config.json + weights, relative to the model directory

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_FILE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
