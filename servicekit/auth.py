"""Verifying identity-issued access tokens against a cached JWKS, and the caller they describe."""

from __future__ import annotations

import base64
import contextvars
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from jwt import PyJWK

from servicekit.errors import PermissionDenied, Unauthenticated
from servicekit.token_cache import VerifiedTokens

ACCESS_TOKEN_TYPE = "at+jwt"
ALLOWED_ALGORITHMS = ("ES256", "EdDSA")
REQUIRED_CLAIMS = ("iss", "aud", "sub", "exp", "iat", "jti")
MAX_LEEWAY_SECONDS = 60

KIND_CITIZEN = "citizen"
KIND_OFFICIAL = "official"
KIND_CLIENT = "client"


@dataclass(frozen=True)
class Actor:
    """Who acts for the subject under a token exchange (the RFC 8693 ``act`` claim)."""

    subject: str
    kind: str
    agency: str = ""
    relation: str = ""


@dataclass(frozen=True)
class Principal:
    """The verified caller of one request."""

    subject: str
    kind: str
    scopes: frozenset[str] = frozenset()
    level_of_assurance: int = 0
    agency: str = ""
    roles: frozenset[str] = frozenset()
    client_id: str = ""
    actor: Actor | None = None
    token_id: str = ""
    expires_at: int = 0
    claims: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_citizen(self) -> bool:
        return self.kind == KIND_CITIZEN

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def require_scope(self, scope: str) -> None:
        """Refuse the call unless the token carries ``scope``."""
        if scope not in self.scopes:
            raise PermissionDenied(f"this call needs the scope {scope!r}; the token has "
                                   f"{' '.join(sorted(self.scopes)) or 'no scopes'}",
                                   reason="MISSING_SCOPE", metadata={"required_scope": scope})

    def require_level(self, level: int) -> None:
        """Step-up: refuse unless the login's level of assurance reaches ``level``."""
        if self.level_of_assurance < level:
            raise PermissionDenied(f"this call needs a level {level} (VNeID level {level}) login; "
                                   f"this token is level {self.level_of_assurance}",
                                   reason="STEP_UP_REQUIRED", metadata={"required_level": str(level)})

    def acting_for_display(self) -> str:
        """'A' or 'B on behalf of A', for access logs."""
        if self.actor is None:
            return self.subject
        return f"{self.actor.subject} on behalf of {self.subject}"


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("principal", default=None)


def current_principal() -> Principal:
    """The caller of the RPC being served; UNAUTHENTICATED when the call carried no token."""
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("this call needs an access token: send 'authorization: Bearer <token>'",
                              reason="MISSING_TOKEN")
    return principal


def optional_principal() -> Principal | None:
    """The caller if a token was sent, else None (for public RPCs that behave better when they know)."""
    return _current.get()


def set_principal(principal: Principal | None) -> contextvars.Token[Principal | None]:
    return _current.set(principal)


def reset_principal(token: contextvars.Token[Principal | None]) -> None:
    _current.reset(token)


def http_json(url: str, timeout: float = 3.0) -> dict[str, Any]:
    """GET a JSON document with a hard timeout."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - configured https/http URL
        return json.loads(response.read())


class JwksCache:
    """Signing keys by ``kid``: refreshed periodically, refetched on an unknown kid at most once per
    interval (so a flood of made-up kids cannot turn every request into a fetch), last good keys kept
    when a refresh fails."""

    def __init__(self, fetch: Callable[[], dict[str, Any]], *, refresh_seconds: float = 300.0,
                 min_refetch_seconds: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 algorithms: tuple[str, ...] = ALLOWED_ALGORITHMS) -> None:
        self._fetch = fetch
        # Platform tokens are ES256/EdDSA only; an upstream provider's cache may allow what it signs with.
        self._algorithms = algorithms
        self._refresh_seconds = refresh_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._clock = clock
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = float("-inf")
        self._last_attempt = float("-inf")
        self._lock = threading.Lock()
        self.fetch_count = 0
        self.last_error: str = ""
        # Bumped whenever the set of key ids changes, so memos of verified tokens know to forget.
        self.version = 0

    def _refresh(self) -> None:
        # Caller holds the lock.
        self._last_attempt = self._clock()
        self.fetch_count += 1
        try:
            document = self._fetch()
            keys = {}
            for jwk in document.get("keys", []):
                if jwk.get("use", "sig") != "sig" or "kid" not in jwk:
                    continue
                key = PyJWK(jwk)
                if key.algorithm_name in self._algorithms:
                    keys[jwk["kid"]] = key
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good keys
            self.last_error = f"{type(exc).__name__}: {exc}"
            return
        if keys.keys() != self._keys.keys():
            self.version += 1
        self._keys = keys
        self._fetched_at = self._last_attempt
        self.last_error = ""

    def current_version(self) -> int:
        """The key-set version after the periodic refresh, if one is due."""
        now = self._clock()
        if now - self._fetched_at > self._refresh_seconds and now - self._last_attempt >= self._min_refetch_seconds:
            with self._lock:
                if now - self._last_attempt >= self._min_refetch_seconds:
                    self._refresh()
        return self.version

    def key_for(self, kid: str) -> PyJWK:
        self.current_version()
        key = self._keys.get(kid)
        if key is None:
            # Wait for a fetch another thread may have under way (start-up, rotation) before judging the kid;
            # fetch again only if the interval allows, so a flood of made-up kids never fetches per request.
            with self._lock:
                if kid not in self._keys and self._clock() - self._last_attempt >= self._min_refetch_seconds:
                    self._refresh()
                key = self._keys.get(kid)
        if key is None:
            raise Unauthenticated(f"the token was signed with an unknown key (kid {kid!r})", reason="UNKNOWN_KID")
        return key


class RevocationList:
    """Token ids (``jti``) revoked before they expire, as published by identity. The first check fetches the
    list; after that a stale list is refreshed in the background (one fetch at a time) while requests go on
    judging by the last good list, so no request waits on identity. ``refresh_seconds=0`` fetches on every
    check, synchronously (tests that revoke and expect the very next call to see it)."""

    def __init__(self, fetch: Callable[[], dict[str, Any]] | None, *, refresh_seconds: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._clock = clock
        self._revoked: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")
        self._lock = threading.Lock()
        self.last_error = ""

    def is_revoked(self, jti: str) -> bool:
        if self._fetch is None:
            return jti in self._revoked
        if self._refresh_seconds <= 0 or self._fetched_at == float("-inf"):
            with self._lock:
                if self._refresh_seconds <= 0 or self._fetched_at == float("-inf"):
                    self._refresh()
        elif self._clock() - self._fetched_at > self._refresh_seconds:
            if self._lock.acquire(blocking=False):
                threading.Thread(target=self._refresh_and_release, name="revocations-refresh", daemon=True).start()
        return jti in self._revoked

    def _refresh_and_release(self) -> None:
        try:
            self._refresh()
        finally:
            self._lock.release()

    def _refresh(self) -> None:
        # Caller holds the lock. A failed fetch keeps the last list and waits an interval before the next try.
        assert self._fetch is not None
        self._fetched_at = self._clock()
        try:
            self._revoked = frozenset(self._fetch().get("revoked_jtis", []))
            self.last_error = ""
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good list
            self.last_error = f"{type(exc).__name__}: {exc}"


class TokenVerifier:
    """Checks an access token the way every service must: signature by a JWKS key, pinned algorithms,
    ``typ``, no unknown critical headers, ``iss``/``aud``/``exp``/``nbf``/``iat`` with bounded leeway,
    required claims, and the revocation list."""

    def __init__(self, keys: JwksCache, *, issuer: str, audience: str, leeway_seconds: int = 30,
                 revocations: RevocationList | None = None, memo_size: int = 4096) -> None:
        if leeway_seconds > MAX_LEEWAY_SECONDS:
            raise ValueError(f"leeway {leeway_seconds}s exceeds the {MAX_LEEWAY_SECONDS}s the platform allows")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        self._revocations = revocations
        self._decoder = jwt.PyJWT(options={"require": list(REQUIRED_CLAIMS), "verify_signature": True})
        # A caller repeats its token on every call until it expires: the signature check (most of the cost)
        # is done once per token. Expiry is re-checked on every hit, revocation is never memoised, and the
        # memo is emptied when the published keys change (a withdrawn key withdraws its tokens at once).
        self._memo = VerifiedTokens(size=memo_size, leeway_seconds=leeway_seconds) if memo_size > 0 else None
        self._memo_keys_version = -1

    def verify(self, token: str) -> Principal:
        principal = self._remembered(token)
        if principal is None:
            principal = self._verify_in_full(token)
            if self._memo is not None:
                self._memo.put(token, principal)
        if self._revocations is not None and self._revocations.is_revoked(principal.token_id):
            raise Unauthenticated("the access token has been revoked", reason="TOKEN_REVOKED")
        return principal

    def _remembered(self, token: str) -> Principal | None:
        if self._memo is None:
            return None
        version = self._keys.current_version()
        if version != self._memo_keys_version:
            self._memo.clear()
            self._memo_keys_version = version
            return None
        return self._memo.get(token)

    def _verify_in_full(self, token: str) -> Principal:
        header = _unverified_header(token)
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise Unauthenticated(f"token algorithm {algorithm!r} is not accepted; use one of "
                                  f"{', '.join(ALLOWED_ALGORITHMS)}", reason="ALGORITHM_NOT_ALLOWED")
        if header.get("crit"):
            raise Unauthenticated(f"token has critical header extensions we do not understand: {header['crit']}",
                                  reason="UNKNOWN_CRITICAL_HEADER")
        if header.get("typ", "").lower() != ACCESS_TOKEN_TYPE:
            raise Unauthenticated(f"token type {header.get('typ')!r} is not an access token ({ACCESS_TOKEN_TYPE})",
                                  reason="WRONG_TOKEN_TYPE")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("the token header has no key id (kid)", reason="MISSING_KID")
        key = self._keys.key_for(kid)
        if key.algorithm_name != algorithm:
            raise Unauthenticated(f"key {kid!r} signs with {key.algorithm_name}, not {algorithm}",
                                  reason="ALGORITHM_MISMATCH")
        return principal_from_claims(self._decode(token, key))

    def _decode(self, token: str, key: PyJWK) -> dict[str, Any]:
        try:
            return self._decoder.decode(token, key, algorithms=[key.algorithm_name], audience=self._audience,
                                        issuer=self._issuer, leeway=self._leeway)
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the access token has expired; get a new one", reason="TOKEN_EXPIRED") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the access token is not valid yet (nbf/iat in the future)",
                                  reason="TOKEN_NOT_YET_VALID") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated(f"the access token is not meant for this service (audience {self._audience})",
                                  reason="WRONG_AUDIENCE") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the access token was issued by an unknown issuer", reason="WRONG_ISSUER") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the access token lacks the {exc.claim!r} claim",
                                  reason="MISSING_CLAIM") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the access token signature does not verify", reason="BAD_SIGNATURE") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the access token is invalid: {exc}", reason="INVALID_TOKEN") from None


def _unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header, parsed here so that policy checks (alg, crit, typ) give their own reasons."""
    try:
        encoded = token.split(".", 1)[0]
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise Unauthenticated("the access token is not a well-formed JWT", reason="MALFORMED_TOKEN") from None
    if not isinstance(header, dict) or token.count(".") != 2:
        raise Unauthenticated("the access token is not a well-formed JWT", reason="MALFORMED_TOKEN")
    return header


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Map verified platform claims to a Principal (claim names are the identity service's contract)."""
    act = claims.get("act")
    actor = None
    if isinstance(act, dict) and act.get("sub"):
        actor = Actor(subject=str(act["sub"]), kind=str(act.get("dvc_kind", "")), agency=str(act.get("agency", "")),
                      relation=str(act.get("relation", "")))
    return Principal(
        subject=str(claims["sub"]),
        kind=str(claims.get("dvc_kind", "")),
        scopes=frozenset(str(claims.get("scope", "")).split()),
        level_of_assurance=int(claims.get("loa", 0) or 0),
        agency=str(claims.get("agency", "") or ""),
        roles=frozenset(_as_strings(claims.get("roles", ()))),
        client_id=str(claims.get("client_id", "") or ""),
        actor=actor,
        token_id=str(claims["jti"]),
        expires_at=int(claims["exp"]),
        claims=claims,
    )


def _as_strings(values: Iterable[Any] | str) -> list[str]:
    if isinstance(values, str):
        return values.split()
    return [str(value) for value in values]


def verifier_from_settings(platform: Any, audience: str) -> TokenVerifier:
    """The standard verifier for a service, fetching identity's JWKS and revocation list over HTTP."""
    keys = JwksCache(lambda: http_json(platform.jwks_url), refresh_seconds=platform.jwks_refresh_seconds,
                     min_refetch_seconds=platform.jwks_min_refetch_seconds)
    revocations = RevocationList(lambda: http_json(platform.revocations_url), refresh_seconds=5.0)
    return TokenVerifier(keys, issuer=platform.jwt_issuer, audience=audience,
                         leeway_seconds=platform.jwt_leeway_seconds, revocations=revocations)
