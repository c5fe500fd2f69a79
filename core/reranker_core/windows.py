"""The `max_window` policy for long passages: a passage longer than the tokens the model has left
for it is cut into overlapping windows of whole tokens; each window is scored with the query and
the passage gets the best window's score.

Windows are cut from the passage TEXT at token boundaries (the tokenizer's character offsets), so
each window is itself an ordinary passage: the client, the text model and FlagEmbedding all score
exactly the same window strings. Consecutive windows overlap by a quarter of the window (limits.
WINDOW_OVERLAP) unless the caller sets `window_stride` (tokens between window starts, at most the
window)."""
from __future__ import annotations

from typing import Optional

from tokenizers import Tokenizer

from reranker_core.limits import WINDOW_OVERLAP


def default_stride(window: int) -> int:
    return max(1, window - window * WINDOW_OVERLAP[0] // WINDOW_OVERLAP[1])


def window_texts(tokenizer: Tokenizer, passage: str, window: int, stride: Optional[int] = None) -> list[str]:
    """`passage` itself when it fits in `window` tokens, else its overlapping windows in order."""
    encoding = tokenizer.encode(passage, add_special_tokens=False)
    count = len(encoding.ids)
    if window < 1 or count <= window:
        return [passage]
    step = min(stride or default_stride(window), window)
    offsets = encoding.offsets
    texts: list[str] = []
    start = 0
    while True:
        end = min(start + window, count)
        text = passage[offsets[start][0]:offsets[end - 1][1]]
        if text.strip():
            texts.append(text)
        if end == count:
            break
        start += step
    return texts or [passage]
