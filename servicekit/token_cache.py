"""A bounded memo of access tokens that already passed full verification (servicekit.auth.TokenVerifier keeps
one), so a service seeing the same token again pays a dictionary lookup instead of a signature check. Expiry is
re-checked on every hit; revocation is never memoised (the caller reads the deny-list every time)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # servicekit.auth uses this memo; the import is for types only
    from servicekit.auth import Principal


class VerifiedTokens:
    """Token string -> the Principal its verification produced, oldest evicted first."""

    def __init__(self, size: int = 4096, leeway_seconds: int = 30, clock: Callable[[], float] = time.time) -> None:
        self._size = size
        self._leeway = leeway_seconds
        self._clock = clock
        self._entries: dict[str, Principal] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        """The memoised principal, or None when unknown or past its expiry (the caller then verifies in full,
        which gives the precise refusal). A memo belongs to one verifier, so to one audience."""
        principal = self._entries.get(token)
        if principal is None:
            return None
        if self._clock() > principal.expires_at + self._leeway:
            self._entries.pop(token, None)
            return None
        return principal

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            while len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[token] = principal

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
