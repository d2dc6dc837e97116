"""The platform's signing keys: ES256, private halves encrypted at rest, one active, older ones published until
their last token expires; served as a JWKS and used by identity's own verifiers."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from identity_service.adapters.crypto import KeyEncryptor
from identity_service.adapters.orm import revoked_tokens
from identity_service.adapters.repositories import SigningKeyRepository, SigningKeyRow
from identity_service.domain.claims import MAX_ACCESS_TOKEN_SECONDS
from servicekit.auth import MAX_LEEWAY_SECONDS, JwksCache, RevocationList
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
                 clock: Callable[[], float] = time.time, cache_seconds: float = 5.0) -> None:
        self._sessions = sessions
        self._encryptor = encryptor
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._rows: list[SigningKeyRow] = []
        self._loaded_at = float("-inf")
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
        """A published key by id; an id not in the cache is looked up directly (one indexed read), so a key
        rotated on another replica verifies at once."""
        cached = self._public.get(kid)
        if cached is not None and any(row.kid == kid for row in self._published()):
            return cached
        row = next((row for row in self._published() if row.kid == kid), None)
        if row is None:
            with self._sessions() as session:
                row = SigningKeyRepository(session).get_published(kid, self.now())
            if row is None:
                return None
            self.invalidate()
        key = PyJWK(row.public_jwk)
        self._public[kid] = key
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


class DatabaseRevocations(RevocationList):
    """The deny-list checked in the database on every call (one primary-key read on a pooled connection, no ORM
    session): identity's own view is never stale."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(None)
        self._engine = engine
        self._query = select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == bindparam("jti"))

    def is_revoked(self, jti: str) -> bool:
        with self._engine.connect() as connection:
            return connection.execute(self._query, {"jti": jti}).first() is not None
