"""Optional API keys: `Authorization: Bearer <key>`, compared in constant time, never logged."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from reranker_api.errors import ApiError


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeys:
    """The accepted keys, kept only as SHA-256 digests (equal length, so the comparison time does
    not depend on which key or how much of it matches)."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(k) for k in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def matches(self, presented: str) -> bool:
        digest = _digest(presented)
        found = False
        for known in self._digests:  # every key is compared: no early exit
            found |= hmac.compare_digest(digest, known)
        return found

    def check(self, authorization: str | None) -> None:
        """Raise ApiError('unauthorized') unless the header carries an accepted Bearer key."""
        if not self.enabled:
            return
        if not authorization:
            raise ApiError("unauthorized", "missing 'Authorization: Bearer <key>' header")
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError("unauthorized", "the Authorization header must be 'Bearer <key>'")
        if not self.matches(key.strip()):
            raise ApiError("unauthorized", "invalid API key")
