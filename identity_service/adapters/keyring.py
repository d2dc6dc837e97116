"""The platform's signing keys: ES256, private halves encrypted at rest, one active, older ones published until
their last token expires; served as a JWKS and used by identity's own verifiers."""

from __future__ import annotations

import base64
import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from identity_service.adapters.crypto import KeyEncryptor
from identity_service.adapters.repositories import SigningKeyRepository, SigningKeyRow
from identity_service.domain.claims import MAX_ACCESS_TOKEN_SECONDS
from servicekit.auth import MAX_LEEWAY_SECONDS, JwksCache, RevocationList
from servicekit.db import make_engine
from servicekit.errors import Unauthenticated

ALGORITHM = "ES256"
# A superseded key stays in the JWKS until every token it signed has expired, leeway included.
RETIRED_KEY_OVERLAP = timedelta(seconds=MAX_ACCESS_TOKEN_SECONDS + MAX_LEEWAY_SECONDS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def thumbprint_kid(public_jwk: dict[str, Any]) -> str:
    """RFC 7638 thumbprint of an EC key: stable, and tells nothing but the key."""
    canonical = json.dumps({name: public_jwk[name] for name in ("crv", "kty", "x", "y")}, separators=(",", ":"),
                           sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode("ascii")).digest())[:22]


def generate_key_row(encryptor: KeyEncryptor, now: datetime, active_from: datetime) -> SigningKeyRow:
    private = ec.generate_private_key(ec.SECP256R1())
    public_jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    kid = thumbprint_kid(public_jwk)
    public_jwk.update({"kid": kid, "use": "sig", "alg": ALGORITHM})
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return SigningKeyRow(kid, ALGORITHM, public_jwk, encryptor.encrypt(pem, kid), now, active_from, None)


class Keyring:
    """Reads keys through a short cache (so replicas pick up a rotation within seconds) and decrypts only the key
    that signs."""

    def __init__(self, sessions: sessionmaker[Session], encryptor: KeyEncryptor, *,
                 clock: Callable[[], float] = time.time, cache_seconds: float = 5.0,
                 min_reload_seconds: float = 1.0) -> None:
        self._sessions = sessions
        self._encryptor = encryptor
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._rows: list[SigningKeyRow] = []
        self._loaded_at = float("-inf")
        self._min_reload_seconds = min_reload_seconds
        self._forced_at = float("-inf")
        self._public: dict[str, PyJWK] = {}
        self._private: dict[str, ec.EllipticCurvePrivateKey] = {}

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _published(self) -> list[SigningKeyRow]:
        if self._clock() - self._loaded_at > self._cache_seconds:
            with self._lock, self._sessions() as session:
                self._rows = SigningKeyRepository(session).published(self.now())
                self._loaded_at = self._clock()
        return self._rows

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def ensure_signing_key(self) -> None:
        """At start-up: make sure some key can sign (a fresh database has none)."""
        if any(row.publish_until is None for row in self._published()):
            return
        now = self.now()
        with self._sessions() as session:
            SigningKeyRepository(session).add(generate_key_row(self._encryptor, now, now))
            session.commit()
        self.invalidate()

    def signing_key(self) -> tuple[str, ec.EllipticCurvePrivateKey]:
        """The newest key whose activation time has come."""
        now = self.now()
        candidates = [row for row in self._published() if row.active_from <= now]
        if not candidates:
            self.invalidate()
            candidates = [row for row in self._published() if row.active_from <= now]
        if not candidates:
            raise Unauthenticated("no signing key is active", reason="NO_SIGNING_KEY")
        row = max(candidates, key=lambda item: item.active_from)
        key = self._private.get(row.kid)
        if key is None:
            loaded = serialization.load_pem_private_key(self._encryptor.decrypt(row.private_key_encrypted, row.kid),
                                                        password=None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            key = self._private[row.kid] = loaded
        return row.kid, key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [row.public_jwk for row in self._published()]}

    def public_key(self, kid: str) -> PyJWK | None:
        """A published key by id. An id not in the cache reloads the keys at once (a key rotated on another
        replica verifies immediately), but at most once per ``min_reload_seconds``, so a flood of made-up kids
        cannot turn every request into a database read."""
        row = next((row for row in self._published() if row.kid == kid), None)
        if row is None and self._clock() - self._forced_at >= self._min_reload_seconds:
            self._forced_at = self._clock()
            self.invalidate()
            row = next((row for row in self._published() if row.kid == kid), None)
        if row is None:
            return None
        key = self._public.get(kid)
        if key is None:
            key = self._public[kid] = PyJWK(row.public_jwk)
        return key

    def rotate(self, keys: SigningKeyRepository, activate_after: timedelta,
               idempotency_key: str | None) -> SigningKeyRow:
        """Add a new key, published now and signing from ``now + activate_after``; every older key keeps
        verifying until tokens it may still sign have expired. The caller commits, then calls ``invalidate``."""
        now = self.now()
        row = generate_key_row(self._encryptor, now, now + activate_after)
        keys.retire_others(row.kid, row.active_from + RETIRED_KEY_OVERLAP)
        keys.add(row, idempotency_key)
        return row


class KeyringJwks(JwksCache):
    """servicekit's key lookup, answered from the keyring instead of over HTTP (identity verifies its own keys)."""

    def __init__(self, keyring: Keyring) -> None:
        super().__init__(keyring.jwks, min_refetch_seconds=1.0)
        self._keyring = keyring

    def key_for(self, kid: str) -> PyJWK:
        key = self._keyring.public_key(kid)
        if key is None:
            raise Unauthenticated(f"the token was signed with an unknown key (kid {kid!r})", reason="UNKNOWN_KID")
        return key


def lookup_engine(url: str, connections: int = 16) -> Engine:
    """An engine for single-statement reads on the hot path: autocommit, no ping before use and no rollback
    after, so a read is exactly one round trip. SQLite (development) just uses the ordinary engine."""
    if make_url(url).get_backend_name() == "sqlite":
        return make_engine(url)
    return create_engine(url, pool_size=connections, max_overflow=connections, pool_pre_ping=False,
                         pool_reset_on_return=None, isolation_level="AUTOCOMMIT", pool_timeout=10,
                         connect_args={"connect_timeout": 5})


class DatabaseRevocations(RevocationList):
    """The deny-list checked in the database on every call: one primary-key read, prepared once per connection,
    on driver connections kept ready here (no ORM, no pool checkout, no ping, no rollback), so identity's own view
    is never stale and the read costs one round trip. ``engine`` should be a ``lookup_engine`` of its own: the
    connections kept here stay checked out of its pool."""

    def __init__(self, engine: Engine, keep: int = 8) -> None:
        super().__init__(None)
        self._engine = engine
        self._keep = keep
        self._idle: queue.LifoQueue[Any] = queue.LifoQueue()
        marker = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = f"SELECT 1 FROM revoked_tokens WHERE jti = {marker}"  # noqa: S608 - constant SQL, bound value
        self._prepare = {"prepare": True} if engine.dialect.driver == "psycopg" else {}

    def is_revoked(self, jti: str) -> bool:
        for attempt in range(2):
            try:
                pooled = self._idle.get_nowait()
            except queue.Empty:
                pooled = self._engine.raw_connection()
            try:
                row = pooled.driver_connection.execute(self._sql, (jti,), **self._prepare).fetchone()
            except Exception as exc:
                # A kept connection the server dropped fails once: discard it and try on a fresh one.
                pooled.invalidate(exc)
                pooled.close()
                if attempt:
                    raise
                continue
            if self._idle.qsize() < self._keep:
                self._idle.put(pooled)
            else:
                pooled.close()
            return row is not None
        raise AssertionError("unreachable")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
