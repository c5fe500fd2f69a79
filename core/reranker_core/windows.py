"""The `max_window` policy for long passages: a passage longer than the tokens the model has left
for it is cut into overlapping windows of whole tokens; each window is scored with the query and
the passage gets the best window's score.

Windows are cut from the passage TEXT at token boundaries (the tokenizer's character offsets), so
each window is itself an ordinary passage: the client, the text model and FlagEmbedding all score
exactly the same window strings. Consecutive windows overlap by a quarter of the window (limits.
WINDOW_OVERLAP) unless the caller sets `window_stride` (tokens between window starts, at most the
window)."""

from __future__ import annotations

from tokenizers import Tokenizer

from reranker_core.limits import WINDOW_OVERLAP


def default_stride(window: int) -> int:
    return max(1, window - window * WINDOW_OVERLAP[0] // WINDOW_OVERLAP[1])


def window_texts(tokenizer: Tokenizer, passage: str, window: int, stride: int | None = None) -> list[str]:
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
        text, end = _fitting_window(tokenizer, passage, offsets, start, min(start + window, count), window)
        if text.strip():
            texts.append(text)
        if end == count:
            break
        start = min(start + step, end)
    return texts or [passage]


def _fitting_window(
    tokenizer: Tokenizer, passage: str, offsets: list[tuple[int, int]], start: int, end: int, window: int
) -> tuple[str, int]:
    """The text of tokens [start, end), shortened at the end until it encodes to at most `window`
    tokens on its own (a window cut inside a word can encode to one token more than its slice)."""
    while True:
        text = passage[offsets[start][0] : offsets[end - 1][1]]
        if end - start <= 1 or len(tokenizer.encode(text, add_special_tokens=False).ids) <= window:
            return text, end
        end -= 1
