"""Test support: tiny deterministic checkpoints, the FlagEmbedding oracle, the embedded server."""
