"""Server-side runtime of the BGE reranker models served by Triton (Python backend code,
the embedded-server launcher and the torch modules of the LLM reranker families)."""
