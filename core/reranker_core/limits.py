"""Default limits and budgets, one place for client, server models, export and the rerank API."""

from __future__ import annotations

DEFAULT_MAX_LENGTH = 512  # FlagEmbedding's compute_score default
QUERY_SHARE = (3, 4)  # query_max_length defaults to max_length * 3 // 4


def default_query_max_length(max_length: int) -> int:
    return max_length * QUERY_SHARE[0] // QUERY_SHARE[1]


MAX_TEXT_BYTES = 1 << 20  # one query or passage, UTF-8
MAX_PAIRS_PER_CALL = 100_000  # client: pairs in one compute_score call
TEXT_MODEL_MAX_PAIRS = 1000  # text model: passages in one request (config parameter max_pairs)

# Token models: pairs per Triton request (config max_batch_size).
ENCODER_MAX_BATCH_SIZE = 64
LLM_MAX_BATCH_SIZE = 16

# Padded tokens (rows x longest row) per request the client sends.
CLIENT_MAX_REQUEST_TOKENS = 16384
# Padded tokens per forward pass on the server.
ONNX_CPU_MAX_BATCH_TOKENS = 1024  # embedded ONNX Runtime runner (docs/benchmarks.md)
LLM_GPU_MAX_BATCH_TOKENS = 16384
LLM_CPU_MAX_BATCH_TOKENS = 4096

# Row widths the text model pads to before calling the token model, so that requests from many
# callers have equal shapes and the native backends' dynamic batcher can merge them.
LENGTH_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)

# Long-passage windows (long_passages="max_window"): overlap between consecutive windows as a
# share of the window.
WINDOW_OVERLAP = (1, 4)
