"""Server-side web sessions: the cookie carries only a random id; tokens and the CSRF secret stay here."""

from __future__ import annotations

import json
import secrets
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol


def data_snapshot(data: dict[str, Any]) -> dict[str, str]:
    """Each data key's value as canonical JSON: what a request loaded, to tell later which keys it changed."""
    return {key: json.dumps(value, sort_keys=True) for key, value in data.items()}


def changes_since(snapshot: dict[str, str], data: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(keys changed or added, keys removed) in ``data`` against the ``snapshot`` taken when it was loaded."""
    current = data_snapshot(data)
    changed = {key: data[key] for key, text in current.items() if snapshot.get(key) != text}
    return changed, [key for key in snapshot if key not in data]


def merged(stored: dict[str, Any], changed: dict[str, Any], removed: Sequence[str]) -> dict[str, Any]:
    """``stored`` with one request's changes applied: what every store's ``merge`` writes back."""
    return {**{key: value for key, value in stored.items() if key not in removed}, **changed}


def new_secret() -> str:
    """256 random bits, URL-safe: session ids, CSRF tokens, idempotency keys of forms."""
    return secrets.token_urlsafe(32)


@dataclass
class WebSession:
    """One browser's session. ``data`` holds the login (subject, name, tokens) and a pending login's state."""

    session_id: str
    csrf_token: str
    created_at: float
    last_seen: float
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fresh(cls, now: float) -> WebSession:
        return cls(session_id=new_secret(), csrf_token=new_secret(), created_at=now, last_seen=now)

    def rotated(self, now: float) -> WebSession:
        """The same data under a new id and CSRF token: done at login so an id planted before it is useless."""
        return replace(self, session_id=new_secret(), csrf_token=new_secret(), created_at=now, last_seen=now,
                       data=dict(self.data))


class SessionStore(Protocol):
    """Where sessions live; a replicated deployment plugs in a shared store behind this interface."""

    def load(self, session_id: str) -> WebSession | None: ...

    def save(self, session: WebSession) -> None: ...

    def delete(self, session_id: str) -> None: ...

    def merge(self, session: WebSession, changed: dict[str, Any], removed: Sequence[str]) -> None:
        """Write only the data keys one request changed or removed into the stored session, so a request that
        read the session earlier cannot undo what another one wrote meanwhile (refreshed tokens). A session that
        is gone (logged out, expired) stays gone."""
        ...

    def exclusive(self, session_id: str) -> AbstractContextManager[None]:
        """Held by one request of one session at a time, in every process sharing the store (token refresh)."""
        ...


class StripedLocks:
    """Per-session mutual exclusion inside one process without a lock per session."""

    def __init__(self, stripes: int = 64) -> None:
        self._locks = tuple(threading.Lock() for _ in range(stripes))

    @contextmanager
    def exclusive(self, session_id: str) -> Iterator[None]:
        with self._locks[zlib.crc32(session_id.encode()) % len(self._locks)]:
            yield


class MemorySessionStore:
    """Sessions in this process: idle and absolute timeouts, and a bound on how many are kept (the least
    recently used go first), so a flood of anonymous visitors cannot exhaust memory."""

    def __init__(self, *, idle_seconds: float = 1800, max_seconds: float = 12 * 3600, capacity: int = 50_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._idle = idle_seconds
        self._max = max_seconds
        self._capacity = capacity
        self._clock = clock
        self._sessions: OrderedDict[str, WebSession] = OrderedDict()
        self._lock = threading.Lock()
        self._exclusive = StripedLocks()

    def _alive(self, session: WebSession, now: float) -> bool:
        return now - session.last_seen <= self._idle and now - session.created_at <= self._max

    def load(self, session_id: str) -> WebSession | None:
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if not self._alive(session, now):
                del self._sessions[session_id]
                return None
            session.last_seen = now
            self._sessions.move_to_end(session_id)
            # A copy: concurrent requests of one browser each change their own and save what they changed.
            return replace(session, data=dict(session.data))

    def save(self, session: WebSession) -> None:
        with self._lock:
            self._sessions[session.session_id] = replace(session, data=dict(session.data))
            self._sessions.move_to_end(session.session_id)
            while len(self._sessions) > self._capacity:
                self._sessions.popitem(last=False)

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def merge(self, session: WebSession, changed: dict[str, Any], removed: Sequence[str]) -> None:
        with self._lock:
            stored = self._sessions.get(session.session_id)
            if stored is None:
                return
            self._sessions[session.session_id] = replace(stored, data=merged(stored.data, changed, removed),
                                                         last_seen=max(stored.last_seen, session.last_seen))

    def exclusive(self, session_id: str) -> AbstractContextManager[None]:
        return self._exclusive.exclusive(session_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)
