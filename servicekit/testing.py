"""Helpers for tests, benchmarks and load tests: a local token issuer and fresh PostgreSQL databases."""

from __future__ import annotations

import atexit
import os
import sys
import time
import uuid
from typing import Any

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from jwt.algorithms import ECAlgorithm

from servicekit import auth
from servicekit.db import create_postgres_database, drop_postgres_databases

TEST_ISSUER = "https://identity.test.dvc.local"


class ManualClock:
    """A clock (seconds, like time.time or time.monotonic) that moves only when a test sets ``now``."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class LocalTokenIssuer:
    """Mints platform-shaped access tokens with its own ES256 key and verifies them like a service would,
    so payment and wallet tests need no running identity service."""

    def __init__(self, issuer: str = TEST_ISSUER, kid: str | None = None) -> None:
        self.issuer = issuer
        self.kid = kid or f"test-{uuid.uuid4().hex[:8]}"
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.revoked: set[str] = set()

    def jwks(self) -> dict[str, Any]:
        public = ECAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        public.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        return {"keys": [public]}

    def mint(self, subject: str, *, audience: str, kind: str = auth.KIND_CITIZEN, scopes: tuple[str, ...] = (),
             loa: int = 2, agency: str = "", roles: tuple[str, ...] = (), act: dict[str, Any] | None = None,
             lifetime: int = 600, **extra: Any) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": subject, "aud": audience, "iat": now, "nbf": now, "exp": now + lifetime,
            "jti": uuid.uuid4().hex, "dvc_kind": kind, "scope": " ".join(scopes), "loa": loa,
        }
        if agency:
            claims["agency"] = agency
        if roles:
            claims["roles"] = list(roles)
        if act:
            claims["act"] = act
        claims.update(extra)
        return jwt.encode(claims, self.private_key, algorithm="ES256",
                          headers={"kid": self.kid, "typ": auth.ACCESS_TOKEN_TYPE})

    def verifier(self, audience: str) -> auth.TokenVerifier:
        keys = auth.JwksCache(self.jwks, min_refetch_seconds=0.0)
        revocations = auth.RevocationList(lambda: {"revoked_jtis": sorted(self.revoked)}, refresh_seconds=0.0)
        return auth.TokenVerifier(keys, issuer=self.issuer, audience=audience, revocations=revocations)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """gRPC call metadata carrying ``token``."""
    return (("authorization", f"Bearer {token}"),)


_made_here: list[tuple[str, str]] = []   # (admin URL, database) made by this process, dropped when it exits


def fresh_postgres_url(prefix: str) -> str:
    """A new, empty PostgreSQL database on the test server (DVC_TEST_DATABASE_URL), uniquely named. It is
    dropped when this process exits: a test run makes about a thousand, which would otherwise pile up on the
    long-lived local server (gigabytes after a few runs)."""
    admin_url = os.environ.get("DVC_TEST_DATABASE_URL")
    if not admin_url:
        raise RuntimeError("DVC_TEST_DATABASE_URL is not set: run tests through `make test`, which starts PostgreSQL")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = create_postgres_database(admin_url, name)
    if not _made_here:
        atexit.register(drop_databases_made_here)
    _made_here.append((admin_url, name))
    return url


def drop_databases_made_here() -> None:
    """Drop every database ``fresh_postgres_url`` made in this process (run at exit; safe to call earlier)."""
    by_server: dict[str, list[str]] = {}
    while _made_here:
        admin_url, name = _made_here.pop()
        by_server.setdefault(admin_url, []).append(name)
    for admin_url, names in by_server.items():
        try:
            drop_postgres_databases(admin_url, names)
        except Exception as exc:  # noqa: BLE001 - at exit, a server already stopped is not worth a traceback
            print(f"could not drop {len(names)} test database(s): {type(exc).__name__}", file=sys.stderr)


def violations_of(error: grpc.RpcError) -> set[str]:
    """The fields named by the BadRequest detail of a failed call (what a client shows next to its inputs)."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no rich status"
    fields: set[str] = set()
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            fields |= {violation.field for violation in request.field_violations}
    return fields
