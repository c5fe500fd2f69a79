"""The one error type of the shared core: input a caller must fix."""

from __future__ import annotations


class InputError(ValueError):
    """Texts, token tensors or options that are not valid; the message names the problem and is
    meant for the caller (the client raises it as InvalidInputError, servers answer INVALID_ARG)."""
