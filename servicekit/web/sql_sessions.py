"""Web sessions in the service's own database, so any replica of an HTTP edge serves any browser."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from servicekit.web.sessions import StripedLocks, WebSession, merged

metadata = sa.MetaData()
_LOCK_NAMESPACE = 0x57E5  # "web sessions", for pg_advisory_xact_lock(namespace, key)
# Shared by every store of the process: waiters of one process queue here, not on database connections.
_PROCESS_LOCKS = StripedLocks()

# Keyed by the SHA-256 of the session id, data sealed (SessionCipher): whoever reads the table holds neither a
# cookie that logs anyone in nor anyone's tokens.
web_sessions = sa.Table(
    "web_sessions", metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False, index=True),
    sa.Column("data", sa.Text, nullable=False),
)


# Public on purpose (like the dev issuer keys): sessions of `make run` and tests need no configuration.
DEVELOPMENT_KEY = base64.urlsafe_b64encode(hashlib.sha256(b"dvc development web sessions").digest()).decode()


class SessionCipher:
    """Session data encrypted and authenticated at rest (Fernet), so the table leaks no tokens; several keys
    let a rotation roll out: the first encrypts, all of them decrypt."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])

    @classmethod
    def from_setting(cls, value: str) -> SessionCipher:
        """From the comma-separated setting; ValueError says what is wrong with it."""
        keys = [key for key in value.split(",") if key.strip()] or [DEVELOPMENT_KEY]
        try:
            return cls(keys)
        except (ValueError, TypeError) as exc:
            raise ValueError("each key must be URL-safe base64 of 32 bytes (Fernet.generate_key())") from exc

    def seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode("ascii")

    def open(self, sealed: str) -> dict[str, Any] | None:
        """The data, or None when no configured key opens it (a retired key, or tampering)."""
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode("ascii")))
        except (InvalidToken, ValueError):
            return None
        return data if isinstance(data, dict) else None


def _id_hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SqlSessionStore:
    """The SessionStore contract of MemorySessionStore (idle and absolute lifetimes) over one table. A read
    refreshes ``last_seen`` only when it is more than ``touch_seconds`` old, so browsing costs a write a
    minute, not one per request; expired rows are deleted every ``prune_every`` saves."""

    def __init__(self, engine: Engine, *, cipher: SessionCipher | None = None, idle_seconds: float = 1800,
                 max_seconds: float = 12 * 3600, touch_seconds: float = 60, prune_every: int = 500,
                 clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._cipher = cipher or SessionCipher.from_setting("")
        self._idle = idle_seconds
        self._max = max_seconds
        self._touch = touch_seconds
        self._clock = clock
        self._saves = itertools.count(1)
        self._prune_every = prune_every
        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        statement = insert(web_sessions)
        self._upsert = statement.on_conflict_do_update(
            index_elements=[web_sessions.c.id_hash],
            set_={name: statement.excluded[name] for name in ("csrf_token", "created_at", "last_seen", "data")})

    def load(self, session_id: str) -> WebSession | None:
        now = self._clock()
        key = _id_hash(session_id)
        with self._engine.begin() as connection:
            row = connection.execute(sa.select(web_sessions).where(web_sessions.c.id_hash == key)).first()
            if row is None:
                return None
            expired = now - row.last_seen > self._idle or now - row.created_at > self._max
            # A session sealed with a key no longer configured ends like an expired one: the person logs in again.
            data = None if expired else self._cipher.open(row.data)
            if data is None:
                connection.execute(sa.delete(web_sessions).where(web_sessions.c.id_hash == key))
                return None
            last_seen = row.last_seen
            if now - last_seen > self._touch:
                last_seen = now
                connection.execute(sa.update(web_sessions).where(web_sessions.c.id_hash == key)
                                   .values(last_seen=now))
        return WebSession(session_id=session_id, csrf_token=row.csrf_token, created_at=row.created_at,
                          last_seen=last_seen, data=data)

    def save(self, session: WebSession) -> None:
        with self._engine.begin() as connection:
            connection.execute(self._upsert, {
                "id_hash": _id_hash(session.session_id), "csrf_token": session.csrf_token,
                "created_at": session.created_at, "last_seen": max(session.last_seen, self._clock()),
                "data": self._cipher.seal(session.data)})
            if next(self._saves) % self._prune_every == 0:
                self._prune(connection)

    def merge(self, session: WebSession, changed: dict[str, Any], removed: Sequence[str]) -> None:
        key = _id_hash(session.session_id)
        with self._engine.begin() as connection:
            # Row-locked read-modify-write (SQLite, for local runs, serialises writers anyway).
            row = connection.execute(sa.select(web_sessions.c.data).where(web_sessions.c.id_hash == key)
                                     .with_for_update()).first()
            if row is None:
                return
            stored = self._cipher.open(row.data)
            if stored is None:
                return
            connection.execute(sa.update(web_sessions).where(web_sessions.c.id_hash == key).values(
                data=self._cipher.seal(merged(stored, changed, removed)),
                last_seen=max(session.last_seen, self._clock())))

    def delete(self, session_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(sa.delete(web_sessions).where(web_sessions.c.id_hash == _id_hash(session_id)))

    @contextmanager
    def exclusive(self, session_id: str) -> Iterator[None]:
        """A PostgreSQL advisory lock for the session, held by a transaction of its own (load and save on other
        connections are not blocked by it); SQLite serves one process, where a process lock is enough."""
        with _PROCESS_LOCKS.exclusive(session_id):
            if self._engine.dialect.name != "postgresql":
                yield
                return
            # The two-key form, with a namespace of its own: it never meets the single-key locks other code takes.
            key = int(_id_hash(session_id)[:7], 16)
            with self._engine.begin() as connection:
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(:namespace, :key)"),
                                   {"namespace": _LOCK_NAMESPACE, "key": key})
                yield

    def prune(self) -> int:
        """Delete every expired session now; returns how many."""
        with self._engine.begin() as connection:
            return self._prune(connection)

    def _prune(self, connection: sa.Connection) -> int:
        now = self._clock()
        result = connection.execute(sa.delete(web_sessions).where(sa.or_(
            web_sessions.c.last_seen < now - self._idle, web_sessions.c.created_at < now - self._max)))
        return int(result.rowcount or 0)
