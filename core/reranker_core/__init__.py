"""The contract of the BGE rerankers served by Triton, shared by the client, the server's models,
the rerank API and export: families and their defaults, limits, tensor and parameter names, the
model manifest, FlagEmbedding-exact encoding, validated scoring options and request packing.

Dependencies: `numpy`; the tokenizing modules (encoding, pipeline, windows, packing) need the
`tokenize` extra (`tokenizers`). No tritonclient, no torch."""
