"""Export BGE reranker checkpoints into Triton model directories (`python -m export --help`)."""
