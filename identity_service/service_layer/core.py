"""What every identity use case shares: the token policy, issued tokens, paging, and the handler core
(ports, audit, minting, verification, refresh families)."""

from __future__ import annotations

import base64
import binascii
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from identity_service.adapters import jwt_checks
from identity_service.adapters.crypto import KeyEncryptor
from identity_service.adapters.keyring import ALGORITHM, DatabaseRevocations, Keyring, KeyringJwks
from identity_service.adapters.oidc import UpstreamClient
from identity_service.adapters.repositories import (
    RefreshRow,
)
from identity_service.domain import refresh as refresh_rules
from identity_service.domain import scopes as scope_rules
from identity_service.domain.claims import access_token_claims
from identity_service.domain.consent import Delegation
from identity_service.domain.providers import Provider
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit.auth import Principal, TokenVerifier
from servicekit.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    NotFound,
    Unauthenticated,
)
from servicekit.logs import request_id_var

log = logging.getLogger("dvc.identity")


ACCESS_TOKEN_TYPE_URN = "urn:ietf:params:oauth:token-type:access_token"
NATIONAL_ID_TOKEN_TYPE_URN = "urn:dvc:params:oauth:token-type:national-id"
DEFAULT_PROVIDER = "vneid"
UPSTREAM_GUARDIANSHIP_TTL = timedelta(days=365)
MAX_PAGE = 200


@dataclass(frozen=True)
class TokenPolicy:
    """Issuer, endpoints and lifetimes the handlers apply."""

    issuer: str
    access_token_seconds: int = 600
    refresh_token_seconds: int = 8 * 3600
    session_max_seconds: int = 12 * 3600
    login_session_seconds: int = 600
    default_redirect_uri: str = ""
    allowed_redirect_uris: tuple[str, ...] = ()
    leeway_seconds: int = 30
    jwks_max_age_seconds: int = 300

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer.rstrip('/')}/token"


@dataclass(frozen=True)
class IssuedTokens:
    """An access token and, for person logins, the next refresh token."""

    access_token: str
    jti: str
    audience: str
    scopes: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    refresh_token: str = ""
    refresh_expires_at: datetime | None = None

    @property
    def expires_in(self) -> int:
        return int((self.expires_at - self.issued_at).total_seconds())


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(value.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument.single("page_token", "is not a page token from this API",
                                     reason="INVALID_PAGE_TOKEN") from None


def page_size(requested: int, default: int = 50, maximum: int = MAX_PAGE) -> int:
    if requested < 0:
        raise InvalidArgument.single("page_size", "must not be negative")
    return min(requested or default, maximum)


def kid_of(token: str) -> str:
    """The kid of a token's header."""
    return str(jwt_checks.segment(token, 0).get("kid", ""))


def peek_claims(token: str) -> dict[str, Any]:
    """The unverified payload, only to pick which verifier checks it."""
    return jwt_checks.segment(token, 1)


class HandlerCore:
    """The ports every use case needs and the steps they share: auditing, minting, verifying, refresh
    families."""

    def __init__(self, uow_factory: Callable[[], IdentityUnitOfWork], keyring: Keyring, upstream: UpstreamClient,
                 encryptor: KeyEncryptor, policy: TokenPolicy, revocations: DatabaseRevocations,
                 clock: Callable[[], float] = time.time) -> None:
        self._uow = uow_factory
        self.keyring = keyring
        self._upstream = upstream
        self._encryptor = encryptor
        self.policy = policy
        self._revocations = revocations
        self._clock = clock
        # Revocation is checked separately (one direct read), so these verifiers carry no revocation list.
        keys = KeyringJwks(keyring)
        self._verifiers = {audience: TokenVerifier(keys, issuer=policy.issuer, audience=audience,
                                                   leeway_seconds=policy.leeway_seconds)
                           for audience in scope_rules.AUDIENCES}

    # ---- helpers -------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _audit(self, uow: IdentityUnitOfWork, event_type: str, *, actor: str, subject: str,
               outcome: str = "success", **detail: Any) -> None:
        uow.audit.add(occurred_at=self.now(), event_type=event_type, actor=actor, subject=subject, outcome=outcome,
                      detail=detail, request_id=request_id_var.get())

    def _audit_failure(self, event_type: str, error: DomainError, *, actor: str, subject: str,
                       **detail: Any) -> None:
        """Failures are audited in their own transaction: the failed one is rolled back."""
        try:
            with self._uow() as uow:
                self._audit(uow, event_type, actor=actor, subject=subject, outcome="failure", reason=error.reason,
                            **detail)
                uow.commit()
        except Exception:  # the caller's error matters more than a failed audit write; it is logged
            log.exception("could not write the audit event", extra={"event_type": event_type})

    def _open_secret(self, blob: bytes, provider_id: str) -> str:
        return self._encryptor.decrypt(blob, f"provider:{provider_id}").decode("utf-8")

    def _provider(self, uow: IdentityUnitOfWork, provider_id: str) -> Provider:
        provider = uow.providers.get(provider_id, self._open_secret)
        if provider is None:
            raise NotFound(f"no identity provider {provider_id!r} is registered", reason="UNKNOWN_PROVIDER",
                           metadata={"provider": provider_id})
        return provider

    def _mint(self, *, subject: str, kind: str, audience: str, scopes: tuple[str, ...] = (), level: int = 0,
              agency: str = "", roles: tuple[str, ...] = (), client_id: str = "", act: dict[str, Any] | None = None,
              lifetime: int | None = None) -> IssuedTokens:
        issued = int(self._clock())
        seconds = min(lifetime or self.policy.access_token_seconds, self.policy.access_token_seconds)
        kid, key = self.keyring.signing_key()
        jti = uuid.uuid4().hex
        claims = access_token_claims(issuer=self.policy.issuer, subject=subject, audience=audience, kind=kind,
                                     jti=jti, issued_at=issued, lifetime=seconds, scopes=scopes, level=level,
                                     agency=agency, roles=roles, client_id=client_id, act=act)
        token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "at+jwt"})
        return IssuedTokens(token, jti, audience, tuple(sorted(set(scopes))), datetime.fromtimestamp(issued, UTC),
                            datetime.fromtimestamp(issued + seconds, UTC))

    def _issue_with_refresh(self, uow: IdentityUnitOfWork, *, family_id: str, subject: str, kind: str,
                            session: dict[str, Any], audience: str, default_audience: str,
                            family_expires_at: datetime) -> IssuedTokens:
        access = self._mint(subject=subject, kind=kind, audience=audience,
                            scopes=scope_rules.for_audience(session.get("scopes", ()), audience),
                            level=int(session.get("level", 0)), agency=str(session.get("agency", "")),
                            roles=tuple(session.get("roles", ())))
        now = self.now()
        refresh_token = refresh_rules.new_refresh_token()
        expires_at = refresh_rules.next_expiry(now, timedelta(seconds=self.policy.refresh_token_seconds),
                                               family_expires_at)
        uow.refresh_tokens.add(RefreshRow(
            token_hash=refresh_rules.token_hash(refresh_token), family_id=family_id, subject=subject, kind=kind,
            session=session, default_audience=default_audience, created_at=now, expires_at=expires_at,
            family_expires_at=family_expires_at, access_jti=access.jti, access_expires_at=access.expires_at))
        return replace(access, refresh_token=refresh_token, refresh_expires_at=expires_at)

    def _deny_list(self, uow: IdentityUnitOfWork, tokens: list[tuple[str, datetime]], subject: str,
                   reason: str) -> list[str]:
        """Put (jti, expiry) pairs on the deny-list; returns the ids that were not on it yet."""
        now = self.now()
        return [jti for jti, expires_at in tokens if uow.revocations.add(jti, expires_at, now, reason, subject)]

    def _end_family(self, uow: IdentityUnitOfWork, family_id: str, subject: str, reason: str) -> list[str]:
        return self._deny_list(uow, uow.refresh_tokens.revoke_family(family_id, self.now()), subject, reason)

    def _end_delegation(self, uow: IdentityUnitOfWork, delegation: Delegation, actor: str,
                        now: datetime) -> list[str]:
        """Revoke the delegation and, in the same transaction, deny-list the tokens exchanged under it: a token
        never outlives its delegation."""
        tokens = uow.delegations.revoke(delegation.delegation_id, now)
        revoked = self._deny_list(uow, tokens, delegation.principal_subject, "delegation revoked")
        self._audit(uow, "delegation.revoked", actor=actor, subject=delegation.principal_subject,
                    delegation_id=delegation.delegation_id, relation=delegation.relation, revoked_jtis=len(revoked))
        return revoked

    def verify_access_token(self, token: str, audience: str | None = None, *, check_revoked: bool = True) -> Principal:
        """A platform access token, fully verified (servicekit's rules) for ``audience`` or the one it names,
        and not on the deny-list. The verifier remembers tokens it verified before (expiry re-checked); the
        deny-list is read every time."""
        if audience is None:
            named = peek_claims(token).get("aud")
            if isinstance(named, list) and len(named) == 1:
                named = named[0]
            if not isinstance(named, str) or named not in self._verifiers:
                raise Unauthenticated("the token is not meant for any platform service", reason="WRONG_AUDIENCE")
            audience = named
        principal = self._verifiers[audience].verify(token)
        if check_revoked and self._revocations.is_revoked(principal.token_id):
            raise Unauthenticated("the access token has been revoked", reason="TOKEN_REVOKED")
        return principal


def missing_field(name: str, value: str) -> FieldViolation | None:
    return None if value else FieldViolation(name, "is required")
