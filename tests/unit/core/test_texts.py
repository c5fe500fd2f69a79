"""Text checks at their limits: a text of exactly max_text_bytes UTF-8 bytes passes and one more
byte is refused, whether it arrives as str (client, API) or as UTF-8 bytes (text model), ASCII or
not; bytes are decoded once and measured by their length."""

from __future__ import annotations

import re

import numpy as np
import pytest

from reranker_core.errors import InputError
from reranker_core.limits import MAX_TEXT_BYTES
from reranker_core.texts import check_text, normalize_pairs, text_from_utf8
from reranker_server.text_requests import decode_texts

LIMIT = 64


def texts_of(size: int) -> list[str]:
    """Texts of exactly `size` UTF-8 bytes: ASCII, 2-byte, 3-byte and 4-byte characters."""
    out = ["x" * size]
    for char in ("é", "熊", "🐼"):
        width = len(char.encode("utf-8"))
        out.append(char * (size // width) + "x" * (size % width))
    assert all(len(t.encode("utf-8")) == size for t in out)
    return out


@pytest.mark.parametrize("text", texts_of(LIMIT))
def test_a_text_of_exactly_the_limit_passes(text):
    assert check_text(text, "passage", LIMIT) == text
    assert text_from_utf8(text.encode("utf-8"), "passages[0]", LIMIT) == text
    assert decode_texts(np.array([text.encode("utf-8")], dtype=np.object_), "passages", LIMIT) == [text]


@pytest.mark.parametrize("text", texts_of(LIMIT + 1))
def test_one_byte_over_the_limit_is_refused_naming_the_size(text):
    message = f"is {LIMIT + 1} bytes; the limit is {LIMIT} bytes"
    with pytest.raises(InputError, match=f"passage {message}"):
        check_text(text, "passage", LIMIT)
    with pytest.raises(InputError, match=rf"passages\[0\] {message}"):
        text_from_utf8(text.encode("utf-8"), "passages[0]", LIMIT)
    with pytest.raises(InputError, match=rf"passages\[1\] {message}"):
        decode_texts(np.array([b"ok", text.encode("utf-8")], dtype=np.object_), "passages", LIMIT)
    with pytest.raises(InputError, match=rf"pair 0 passage {message}"):
        normalize_pairs([("q", text)], max_text_bytes=LIMIT)


def test_the_default_limit_is_one_mebibyte_at_the_byte():
    assert check_text("x" * MAX_TEXT_BYTES, "t") and MAX_TEXT_BYTES == 1 << 20
    with pytest.raises(InputError, match=f"is {MAX_TEXT_BYTES + 1} bytes"):
        check_text("x" * (MAX_TEXT_BYTES + 1), "t")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\xff\xfe bad", "is not valid UTF-8 (byte 0)"),
        (b" \t\n ", "is empty"),
        (b"", "is empty"),
        ("bad \ud800 text", "is not valid Unicode text (lone surrogate at 4)"),
        ("   ", "is empty"),
    ],
)
def test_bad_texts_are_named(data, message):
    with pytest.raises(InputError, match=re.escape(f"passages[0] {message}")):
        if isinstance(data, bytes):
            text_from_utf8(data, "passages[0]", LIMIT)
        else:
            check_text(data, "passages[0]", LIMIT)
