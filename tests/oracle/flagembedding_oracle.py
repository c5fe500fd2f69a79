"""Runs FlagEmbedding 1.4.2 in its own environment (transformers 4.47.1) and prints its results.

Reads a JSON list of jobs on stdin and writes a JSON list of results on stdout, so one process
start (the import costs seconds) serves many comparisons. A job:
  {"kind": "encoder" | "llm" | "layerwise" | "lightweight",
   "model": dir, "pairs": [[q, p], ...],
   "init": {...FlagReranker kwargs...}, "score": {...compute_score kwargs...},
   "tokenize": bool}   # also return the token ids FlagEmbedding feeds the model
With "tokenize" the result holds "input_ids": one unpadded id list per pair, in input order,
captured from the model's forward (each pair scored alone, padding stripped with the attention
mask); "lightweight" adds "query_lengths" and "prompt_lengths".
This file is run only by the oracle interpreter; the product never imports FlagEmbedding.
"""

from __future__ import annotations

import json
import sys


def _reranker(job: dict):
    from FlagEmbedding import (
        FlagLLMReranker,
        FlagReranker,
        LayerWiseFlagLLMReranker,
        LightWeightFlagLLMReranker,
    )

    classes = {
        "encoder": FlagReranker,
        "llm": FlagLLMReranker,
        "layerwise": LayerWiseFlagLLMReranker,
        "lightweight": LightWeightFlagLLMReranker,
    }
    init = {"use_fp16": False, "devices": ["cpu"], **job.get("init", {})}
    if job["kind"] in ("layerwise", "lightweight"):
        init.setdefault("trust_remote_code", True)
    return classes[job["kind"]](job["model"], **init)


def _token_ids(reranker, pairs, score_kwargs) -> dict[str, list]:
    """The ids FlagReranker / FlagLLMReranker / LayerWise / LightWeight feed the model, captured
    from the model's forward (FlagEmbedding's own code path and defaults, e.g. query_max_length):
    each pair is scored on its own and the padding is removed with the attention mask."""
    model = reranker.model
    calls: list[dict] = []
    original = model.forward

    def capture(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    model.forward = capture
    out: dict[str, list] = {"input_ids": [], "query_lengths": [], "prompt_lengths": []}
    try:
        for pair in pairs:
            calls.clear()
            reranker.compute_score([list(pair)], **score_kwargs)
            last = calls[-1]
            ids, mask = last["input_ids"][0], last["attention_mask"][0]
            out["input_ids"].append([int(t) for t, m in zip(ids.tolist(), mask.tolist()) if m])
            if "query_lengths" in last:
                out["query_lengths"].append(int(last["query_lengths"][0]))
                out["prompt_lengths"].append(int(last["prompt_lengths"][0]))
    finally:
        model.forward = original
    if not out["query_lengths"]:
        del out["query_lengths"], out["prompt_lengths"]
    return out


def run_job(job: dict, cache: dict) -> dict:
    key = json.dumps([job["kind"], job["model"], job.get("init", {})], sort_keys=True)
    if key not in cache:
        cache[key] = _reranker(job)
    reranker = cache[key]
    pairs = job["pairs"]
    score_kwargs = job.get("score", {})
    scores = reranker.compute_score(pairs, **score_kwargs)
    if not isinstance(scores, list):
        scores = [scores]
    result = {"scores": scores}
    if job.get("tokenize"):
        result.update(_token_ids(reranker, pairs, score_kwargs))
    return result


def main() -> None:
    jobs = json.load(sys.stdin)
    cache: dict = {}
    results = []
    for job in jobs:
        try:
            results.append(run_job(job, cache))
        except Exception as exc:  # reported to the test, which decides
            results.append({"error": f"{type(exc).__name__}: {exc}"})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
