"""Deterministic benchmark workloads: (query, passage) pairs of controlled token lengths.

Lengths are counted with the checkpoint's own tokenizer so that "~200 tokens" means 200 model
tokens (query + passage + the 4 special tokens of `<s> q </s></s> p </s>`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from reranker_core.packing import pad_rows

PAD_ID = 1  # <pad> of the benchmark checkpoints' XLM-R tokenizer (export/tiny/tokenizer_builder.py)

WORDS = (
    "the giant panda is a bear species endemic to china machine learning models rank "
    "passages by relevance to a query rerankers score pairs paris is the capital and most "
    "populous city of france numbers dates prices percentages les élèves étudient à l'école "
    "der schnelle braune fuchs springt über den faulen hund 大熊猫 北京 熊猫喜欢吃竹子 "
    "given a query and a passage determine whether the passage contains an answer"
).split()
ENCODER_SPECIALS = 4  # <s> q </s> </s> p </s>


@dataclass
class Workload:
    """Named list of pairs plus how many model tokens each pair has."""

    name: str
    pairs: list[tuple[str, str]]
    tokens: list[int]

    @property
    def total_tokens(self) -> int:
        return int(sum(self.tokens))


def _text_of_tokens(tok, n: int, rng: random.Random) -> str:
    """Grow a random word sequence until it tokenizes to n tokens (trimming the overshoot)."""
    words: list[str] = []
    while len(tok.encode(" ".join(words), add_special_tokens=False).ids) < n:
        words.append(rng.choice(WORDS))
    ids = tok.encode(" ".join(words), add_special_tokens=False).ids
    while len(ids) > n and len(words) > 1:
        words.pop()
        ids = tok.encode(" ".join(words), add_special_tokens=False).ids
    return " ".join(words)


def encoder_pairs(
    checkpoint: Path,
    lengths: list[int],
    *,
    query_tokens: int = 12,
    seed: int = 0,
    name: str = "pairs",
    shared_query: bool = True,
) -> Workload:
    """Pairs whose encoded length (with specials) is close to each entry of `lengths`."""
    tok = Tokenizer.from_file(str(Path(checkpoint) / "tokenizer.json"))
    rng = random.Random(seed)
    query = _text_of_tokens(tok, query_tokens, rng)
    pairs, counts = [], []
    for total in lengths:
        q = query if shared_query else _text_of_tokens(tok, min(query_tokens, max(1, total // 4)), rng)
        q_len = len(tok.encode(q, add_special_tokens=False).ids)
        p = _text_of_tokens(tok, max(1, total - q_len - ENCODER_SPECIALS), rng)
        p_len = len(tok.encode(p, add_special_tokens=False).ids)
        pairs.append((q, p))
        counts.append(q_len + p_len + ENCODER_SPECIALS)
    return Workload(name, pairs, counts)


def rerank_1x100(checkpoint: Path, passages: int = 100, tokens: int = 200, seed: int = 0) -> Workload:
    """One query against `passages` passages of about `tokens` tokens (+-10%)."""
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(int(tokens * 0.9), int(tokens * 1.1) + 1, passages)]
    return encoder_pairs(checkpoint, lengths, seed=seed, name=f"1x{passages}x{tokens}tok")


def mixed_pairs(checkpoint: Path, n: int = 500, low: int = 16, high: int = 256, seed: int = 1) -> Workload:
    """n pairs of different queries with total lengths uniform in [low, high]."""
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.integers(low, high + 1, n)]
    return encoder_pairs(checkpoint, lengths, seed=seed, name=f"{n}x{low}-{high}tok", shared_query=False)


def encode_encoder_pairs(
    checkpoint: Path, pairs: list[tuple[str, str]], max_length: int = 512
) -> list[list[int]]:
    """`<s> q </s></s> p </s>` ids (the benchmark's in-process baseline; no truncation needed
    for the benchmark lengths, which stay below max_length)."""
    tok = Tokenizer.from_file(str(Path(checkpoint) / "tokenizer.json"))
    qs = tok.encode_batch([q for q, _ in pairs], add_special_tokens=False)
    ps = tok.encode_batch([p for _, p in pairs], add_special_tokens=False)
    out = []
    for q, p in zip(qs, ps):
        ids = [0] + q.ids + [2, 2] + p.ids + [2]
        if len(ids) > max_length:
            raise ValueError(f"benchmark pair of {len(ids)} tokens exceeds max_length {max_length}")
        out.append(ids)
    return out


def pad_batch(seqs: list[list[int]], pad_id: int = PAD_ID) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to the longest sequence: (input_ids, attention_mask) int64 (the runner's own padding)."""
    return pad_rows([np.asarray(s, dtype=np.int64) for s in seqs], pad_id)
