"""Ranking quality vs speed of served rerankers on your own data: `python -m reranker_eval`."""
