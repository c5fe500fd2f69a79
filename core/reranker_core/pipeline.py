"""What happens around a token model, the same in the client and in the text model: validated
pairs + options -> token rows (long passages windowed) -> ... -> scores per pair in input order,
normalized when asked, and the ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from reranker_core.encoding import EncodedPair, encode_pairs, passage_budgets
from reranker_core.errors import InputError
from reranker_core.families import GEMMA2_LIGHTWEIGHT
from reranker_core.manifest import ModelManifest
from reranker_core.options import MAX_WINDOW, ScoreOptions
from reranker_core.packing import RequestBatch, plan_requests
from reranker_core.windows import window_texts


@dataclass
class PreparedPairs:
    """Token rows of one call: `owners[r]` is the caller's pair that row r scores (several rows
    per pair when long passages are windowed)."""

    count: int
    rows: list[EncodedPair]
    owners: np.ndarray

    def batches(
        self, manifest: ModelManifest, *, max_pairs: int, max_tokens: int, buckets: bool = False
    ) -> list[RequestBatch]:
        """Token-model requests for these rows (batch.indices are row indices)."""
        return plan_requests(
            self.rows,
            max_pairs=max_pairs,
            pad_id=manifest.pad_id,
            max_tokens=max_tokens,
            with_segments=manifest.family == GEMMA2_LIGHTWEIGHT,
            buckets=buckets,
            max_positions=manifest.max_positions,
        )

    def pair_scores(self, batches: Sequence[RequestBatch], outputs: Sequence[np.ndarray]) -> np.ndarray:
        """[pairs, k] float64 from each batch's [rows, k] output; windows of a pair -> their max."""
        width = np.asarray(outputs[0]).reshape(len(batches[0].indices), -1).shape[1]
        rows = np.empty((len(self.rows), width), dtype=np.float64)
        for batch, out in zip(batches, outputs):
            rows[batch.indices] = np.asarray(out, dtype=np.float64).reshape(len(batch.indices), width)
        if len(self.rows) == self.count:  # no windows: row i is pair i
            return rows
        scores = np.full((self.count, width), -np.inf)
        np.maximum.at(scores, self.owners, rows)
        return scores


def prepare_pairs(
    tokenizer: Tokenizer, manifest: ModelManifest, pairs: Sequence[tuple[str, str]], options: ScoreOptions
) -> PreparedPairs:
    """Encode validated pairs as FlagEmbedding does (windowing long passages under max_window)."""
    owners = list(range(len(pairs)))
    expanded = list(pairs)
    if options.long_passages == MAX_WINDOW:
        budgets = passage_budgets(
            tokenizer,
            manifest,
            [q for q, _ in pairs],
            max_length=options.max_length,
            query_max_length=options.query_max_length,
            prompt=options.prompt,
        )
        owners, expanded = [], []
        for i, ((query, passage), budget) in enumerate(zip(pairs, budgets)):
            for text in window_texts(tokenizer, passage, budget, options.window_stride):
                owners.append(i)
                expanded.append((query, text))
    try:
        rows = encode_pairs(
            tokenizer,
            manifest,
            expanded,
            max_length=options.max_length,
            query_max_length=options.query_max_length,
            prompt=options.prompt,
        )
    except (ValueError, TypeError) as exc:
        raise InputError(str(exc)) from exc
    if not options.truncate:
        refuse_truncation(tokenizer, manifest, expanded, rows, owners, options)
    longest = max(len(r.input_ids) for r in rows)
    if manifest.max_positions and longest > manifest.max_positions:
        raise InputError(
            f"a pair encodes to {longest} tokens, more than the model's {manifest.max_positions}; "
            f"lower max_length (the query alone is limited by "
            f"query_max_length={options.query_max_length})"
        )
    return PreparedPairs(len(pairs), rows, np.asarray(owners, dtype=np.int64))


UNLIMITED = 1 << 30


def refuse_truncation(
    tokenizer: Tokenizer,
    manifest: ModelManifest,
    pairs: Sequence[tuple[str, str]],
    rows: Sequence[EncodedPair],
    owners: Sequence[int],
    options: ScoreOptions,
) -> None:
    """truncate=false: InputError naming the first passage whose pair max_length or
    query_max_length would cut (its encoding without limits is longer than the one with them)."""
    whole = encode_pairs(
        tokenizer, manifest, pairs, max_length=UNLIMITED, query_max_length=UNLIMITED, prompt=options.prompt
    )
    for row, full, owner in zip(rows, whole, owners):
        if len(full.input_ids) > len(row.input_ids):
            raise InputError(
                f"passages[{owner}]: the (query, passage) pair is {len(full.input_ids)} tokens, "
                f"more than max_length {options.max_length} (query_max_length "
                f"{options.query_max_length}), and truncate is false"
            )
