"""Identity use cases: login, refresh, client credentials, exchange, introspection, revocation and admin; each
one command in, ports injected, ``with uow: ...; uow.commit()``."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import jwt
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from identity_service.adapters import jwt_checks
from identity_service.adapters.crypto import KeyEncryptor, hash_secret, verify_secret
from identity_service.adapters.keyring import ALGORITHM, DatabaseRevocations, Keyring, KeyringJwks
from identity_service.adapters.oidc import UpstreamClient
from identity_service.adapters.repositories import (
    Account,
    AuditEvent,
    LoginSession,
    RefreshRow,
    SigningKeyRow,
)
from identity_service.domain import clients as client_rules
from identity_service.domain import consent, pkce, subjects
from identity_service.domain import providers as provider_rules
from identity_service.domain import refresh as refresh_rules
from identity_service.domain import scopes as scope_rules
from identity_service.domain.claims import access_token_claims
from identity_service.domain.clients import Client
from identity_service.domain.consent import Delegation
from identity_service.domain.providers import Provider, UpstreamIdentity
from identity_service.service_layer.token_cache import VerifiedTokens
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit.auth import KIND_CITIZEN, KIND_CLIENT, Principal, TokenVerifier
from servicekit.errors import (
    AlreadyExists,
    DomainError,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
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


@dataclass(frozen=True)
class LoginStarted:
    authorization_url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginCompleted:
    tokens: IssuedTokens
    subject: str
    identity: UpstreamIdentity
    returning: bool


@dataclass(frozen=True)
class ClientTokenRequest:
    client_id: str
    audience: str
    scope: str = ""
    client_assertion_type: str = ""
    client_assertion: str = ""
    client_secret: str = ""


@dataclass(frozen=True)
class ExchangeRequest:
    subject_token: str
    subject_token_type: str
    audience: str
    actor_token: str = ""
    actor_token_type: str = ""
    scope: str = ""
    requested_token_type: str = ""


@dataclass(frozen=True)
class Introspection:
    claims: dict[str, Any]
    kid: str


@dataclass(frozen=True)
class Revocation:
    revoked_jtis: tuple[str, ...]
    family_revoked: bool


@dataclass(frozen=True)
class UserInfo:
    principal: Principal
    account: Account | None


@dataclass(frozen=True)
class ClientCredentials:
    client: Client
    secret: str


@dataclass(frozen=True)
class ProviderView:
    provider: Provider
    has_client_secret: bool


@dataclass(frozen=True)
class KeyRotation:
    key: SigningKeyRow
    published_kids: tuple[str, ...]


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


def _kid(token: str) -> str:
    """The kid of a token that already verified (so its header is known to be well formed)."""
    encoded = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))).get("kid", ""))


def _peek_claims(token: str) -> dict[str, Any]:
    """The unverified payload, only to pick which verifier checks it."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError):
        raise Unauthenticated("the token is not a well-formed JWT", reason="MALFORMED_TOKEN") from None
    if not isinstance(claims, dict):
        raise Unauthenticated("the token is not a well-formed JWT", reason="MALFORMED_TOKEN")
    return claims


class IdentityHandlers:
    """The identity service's use cases; the gRPC servicer and the HTTP edge both call these."""

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
        self._verified = VerifiedTokens(leeway_seconds=policy.leeway_seconds, clock=clock)

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

    def _end_family(self, uow: IdentityUnitOfWork, family_id: str, subject: str, reason: str) -> list[str]:
        now = self.now()
        revoked = []
        for jti, expires_at in uow.refresh_tokens.revoke_family(family_id, now):
            if uow.revocations.add(jti, expires_at, now, reason, subject):
                revoked.append(jti)
        return revoked

    def verify_access_token(self, token: str, audience: str | None = None, *, check_revoked: bool = True) -> Principal:
        """A platform access token, fully verified (servicekit's rules) for ``audience`` or the one it names,
        and not on the deny-list. A token verified before is taken from the memo (expiry re-checked); the
        deny-list is read every time."""
        principal = self._verified.get(token, audience)
        if principal is None:
            if audience is None:
                named = _peek_claims(token).get("aud")
                if isinstance(named, list) and len(named) == 1:
                    named = named[0]
                if not isinstance(named, str) or named not in self._verifiers:
                    raise Unauthenticated("the token is not meant for any platform service", reason="WRONG_AUDIENCE")
                audience = named
            principal = self._verifiers[audience].verify(token)
            self._verified.put(token, principal)
        if check_revoked and self._revocations.is_revoked(principal.token_id):
            raise Unauthenticated("the access token has been revoked", reason="TOKEN_REVOKED")
        return principal

    # ---- person login --------------------------------------------------------------------------------------

    def _redirect_uri(self, requested: str) -> str:
        chosen = requested.strip() or self.policy.default_redirect_uri
        parsed = urlparse(chosen)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.fragment:
            raise InvalidArgument.single("redirect_uri", "must be an absolute http(s) URL without a fragment",
                                         reason="INVALID_REDIRECT_URI")
        if self.policy.allowed_redirect_uris and chosen not in self.policy.allowed_redirect_uris:
            raise InvalidArgument.single("redirect_uri", "is not one of the registered callback URLs",
                                         reason="REDIRECT_URI_NOT_ALLOWED")
        return chosen

    def start_login(self, provider_id: str, redirect_uri: str = "", audience: str = "") -> LoginStarted:
        target = scope_rules.audience(audience, default=scope_rules.AUDIENCE_IDENTITY)
        callback = self._redirect_uri(redirect_uri)
        with self._uow() as uow:
            provider = self._provider(uow, provider_id or DEFAULT_PROVIDER)
        state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(24), pkce.new_verifier()
        url = self._upstream.authorization_url(provider, redirect_uri=callback, state=state, nonce=nonce,
                                               code_challenge=pkce.s256_challenge(verifier))
        now = self.now()
        expires_at = now + timedelta(seconds=self.policy.login_session_seconds)
        with self._uow() as uow:
            uow.logins.add(LoginSession(state, provider.provider_id, nonce, verifier, callback, target, now,
                                        expires_at))
            uow.commit()
        return LoginStarted(url, state, expires_at)

    def complete_login(self, state: str, code: str) -> LoginCompleted:
        if not state or not code:
            raise InvalidArgument("state and code are both required",
                                  [field for field in (_missing("state", state), _missing("code", code)) if field])
        now = self.now()
        with self._uow() as uow:
            # Claimed and committed before the upstream call: a second callback with the same state is refused
            # even while the first is still talking to the provider.
            login, replayed = uow.logins.claim(state, now)
            uow.commit()
        try:
            if login is None:
                raise Unauthenticated("this login was not started here or has been cleaned up; start again",
                                      reason="UNKNOWN_LOGIN_STATE")
            if replayed:
                raise Unauthenticated("this login was already completed; its code cannot be used again",
                                      reason="LOGIN_ALREADY_COMPLETED")
            if now >= login.expires_at:
                raise Unauthenticated("this login took too long; start again", reason="LOGIN_EXPIRED")
            with self._uow() as uow:
                provider = self._provider(uow, login.provider_id)
            id_token = self._upstream.redeem_code(provider, code=code, redirect_uri=login.redirect_uri,
                                                  code_verifier=login.code_verifier)
            claims = self._upstream.verify_id_token(provider, id_token, login.nonce)
            identity = provider_rules.map_claims(provider, claims)
        except (Unauthenticated, Unavailable, NotFound) as error:
            self._audit_failure("login.failed", error, actor="", subject="",
                                provider=login.provider_id if login else "")
            raise
        with self._uow() as uow:
            returning = uow.accounts.record_login(Account(
                subject=identity.subject, kind=identity.kind, national_id=identity.national_id, name=identity.name,
                agency=identity.agency, roles=identity.roles, level=identity.level, first_login_at=now,
                last_login_at=now, last_provider_id=provider.provider_id))
            if identity.kind == provider_rules.KIND_CITIZEN:
                self._sync_upstream_guardianship(uow, provider, identity)
            session = {"level": identity.level, "agency": identity.agency, "roles": list(identity.roles),
                       "scopes": list(provider.scopes_for_roles(identity.roles))}
            tokens = self._issue_with_refresh(uow, family_id=str(uuid.uuid4()), subject=identity.subject,
                                              kind=identity.kind, session=session, audience=login.audience,
                                              default_audience=login.audience,
                                              family_expires_at=now + timedelta(
                                                  seconds=self.policy.session_max_seconds))
            self._audit(uow, "login.succeeded", actor=identity.subject, subject=identity.subject,
                        provider=provider.provider_id, kind=identity.kind, level=identity.level,
                        returning=returning, jti=tokens.jti)
            uow.commit()
        return LoginCompleted(tokens, identity.subject, identity, returning)

    def _sync_upstream_guardianship(self, uow: IdentityUnitOfWork, provider: Provider,
                                    identity: UpstreamIdentity) -> None:
        """Guardianship the citizen provider asserts (its dependents claim) becomes guardian delegations, kept in
        step with the claim at every level 2 login; links the claim no longer lists are ended."""
        if identity.level < consent.ACTING_CITIZEN_LEVEL or not provider.claim_mapping.dependents:
            return
        now = self.now()
        grantor = f"{consent.GRANTED_BY_UPSTREAM_PREFIX}{provider.provider_id}"
        guardian = identity.subject
        existing = {d.principal_subject: d for d in uow.delegations.granted_by(grantor, guardian, now)}
        for minor in identity.dependents:
            if minor in existing:
                uow.delegations.extend(existing[minor].delegation_id, now + UPSTREAM_GUARDIANSHIP_TTL)
                continue
            delegation = Delegation(str(uuid.uuid4()), minor, consent.DELEGATE_CITIZEN, guardian,
                                    consent.RELATION_GUARDIAN, consent.DELEGABLE_AUDIENCES,
                                    f"guardianship asserted by {provider.provider_id}", now,
                                    now + UPSTREAM_GUARDIANSHIP_TTL, grantor)
            uow.delegations.add(delegation, None)
            self._audit(uow, "delegation.granted", actor=grantor, subject=minor, delegation_id=
                        delegation.delegation_id, relation=consent.RELATION_GUARDIAN, delegate=guardian)
        for minor, delegation in existing.items():
            if minor not in identity.dependents:
                uow.delegations.revoke(delegation.delegation_id, now)
                self._audit(uow, "delegation.revoked", actor=grantor, subject=minor,
                            delegation_id=delegation.delegation_id, relation=consent.RELATION_GUARDIAN)

    def refresh(self, refresh_token: str, audience: str = "") -> IssuedTokens:
        if not refresh_token:
            raise InvalidArgument.single("refresh_token", "is required")
        token_hash = refresh_rules.token_hash(refresh_token)
        now = self.now()
        with self._uow() as uow:
            row = uow.refresh_tokens.get(token_hash, for_update=True)
            if row is None:
                raise Unauthenticated("the refresh token is not one we issued", reason="INVALID_REFRESH_TOKEN")
            verdict = refresh_rules.judge(refresh_rules.RefreshState(
                row.family_id, row.expires_at, row.family_expires_at, row.used_at, row.revoked_at), now)
            if verdict is refresh_rules.Verdict.REUSED:
                revoked = self._end_family(uow, row.family_id, row.subject, "refresh token reuse")
                self._audit(uow, "refresh.reuse_detected", actor=row.subject, subject=row.subject,
                            outcome="failure", family_id=row.family_id, revoked_jtis=len(revoked))
                uow.commit()
            if verdict is not refresh_rules.Verdict.VALID:
                raise refresh_rules.refusal(verdict)
            target = scope_rules.audience(audience, default=row.default_audience)
            uow.refresh_tokens.mark_used(token_hash, now)
            tokens = self._issue_with_refresh(uow, family_id=row.family_id, subject=row.subject, kind=row.kind,
                                              session=row.session, audience=target,
                                              default_audience=row.default_audience,
                                              family_expires_at=row.family_expires_at)
            self._audit(uow, "token.refreshed", actor=row.subject, subject=row.subject, audience=target,
                        family_id=row.family_id, jti=tokens.jti)
            uow.commit()
        return tokens

    # ---- machine clients -----------------------------------------------------------------------------------

    def issue_client_token(self, request: ClientTokenRequest) -> IssuedTokens:
        target = scope_rules.audience(request.audience)
        client_id = request.client_id or self._assertion_subject(request.client_assertion)
        try:
            with self._uow() as uow:
                client = self._authenticate_client(uow, client_id, request)
                granted = scope_rules.grant(request.scope, client.scopes, target)
                tokens = self._mint(subject=client.client_id, kind=KIND_CLIENT, audience=target, scopes=granted,
                                    agency=client.agency, client_id=client.client_id)
                self._audit(uow, "token.issued", actor=client.client_id, subject=client.client_id,
                            audience=target, scope=" ".join(granted), auth_method=client.auth_method,
                            jti=tokens.jti)
                uow.commit()
        except (Unauthenticated, PermissionDenied) as error:
            self._audit_failure("client.authentication_failed" if isinstance(error, Unauthenticated)
                                else "token.refused", error, actor=client_id, subject=client_id, audience=target)
            raise
        return tokens

    @staticmethod
    def _assertion_subject(assertion: str) -> str:
        """RFC 7523 lets a client omit client_id when it sends an assertion; its (verified later) sub names it."""
        if not assertion:
            raise InvalidArgument.single("client_id", "is required", reason="MISSING_CLIENT_ID")
        return str(_peek_claims(assertion).get("sub", ""))

    def _authenticate_client(self, uow: IdentityUnitOfWork, client_id: str, request: ClientTokenRequest) -> Client:
        client = uow.clients.get(client_id) if client_id else None
        if client is None or client.disabled:
            raise Unauthenticated("unknown or disabled client", reason="INVALID_CLIENT",
                                  metadata={"client_id": client_id[:64]})
        if request.client_assertion:
            if client.auth_method != client_rules.AUTH_PRIVATE_KEY_JWT:
                raise Unauthenticated("this client is registered to authenticate with a client secret",
                                      reason="AUTH_METHOD_NOT_ALLOWED")
            if request.client_assertion_type != client_rules.ASSERTION_TYPE:
                raise Unauthenticated(f"client_assertion_type must be {client_rules.ASSERTION_TYPE}",
                                      reason="UNSUPPORTED_ASSERTION_TYPE")
            self._verify_assertion(uow, client, request.client_assertion)
            return client
        if request.client_secret:
            if client.auth_method != client_rules.AUTH_CLIENT_SECRET:
                raise Unauthenticated("this client is registered for private_key_jwt; send a client assertion",
                                      reason="AUTH_METHOD_NOT_ALLOWED")
            now = self.now()
            previous_valid = client.previous_secret_valid_until is not None and now < \
                client.previous_secret_valid_until
            if verify_secret(client.secret_hash, request.client_secret) or (
                    previous_valid and verify_secret(client.previous_secret_hash, request.client_secret)):
                return client
            raise Unauthenticated("the client secret is wrong", reason="INVALID_CLIENT_SECRET")
        raise Unauthenticated("send a client_assertion (private_key_jwt) or a client_secret",
                              reason="MISSING_CLIENT_CREDENTIALS")

    def _verify_assertion(self, uow: IdentityUnitOfWork, client: Client, assertion: str) -> None:
        what, where = "client assertion", {"client_id": client.client_id}
        header = jwt_checks.unverified_header(assertion, what, where)
        algorithm, kid = jwt_checks.check_header(header, client_rules.ASSERTION_ALGORITHMS, what, where)
        jwk = next((key for key in (client.public_jwks or {}).get("keys", []) if key.get("kid") == kid), None)
        if jwk is None:
            raise Unauthenticated(f"the {what} names key {kid!r}, which is not registered for this client",
                                  reason="UNKNOWN_KID", metadata={"token": what, **where})
        try:
            key = PyJWK(jwk, algorithm if "alg" not in jwk else None)
        except PyJWKError:
            raise Unauthenticated(f"the registered key {kid!r} cannot verify {algorithm}",
                                  reason="ALGORITHM_MISMATCH", metadata={"token": what, **where}) from None
        claims = jwt_checks.decode(assertion, key, algorithm, issuer=client.client_id,
                                   audience=[self.policy.issuer, self.policy.token_endpoint],
                                   leeway=self.policy.leeway_seconds,
                                   required=("iss", "sub", "aud", "exp", "iat", "jti"), what=what, metadata=where)
        if claims["sub"] != client.client_id:
            raise Unauthenticated(f"the {what} sub must be the client id", reason="WRONG_SUBJECT",
                                  metadata={"token": what, **where})
        expires_at = float(claims["exp"])
        if expires_at - self._clock() > client_rules.MAX_ASSERTION_LIFETIME_SECONDS + self.policy.leeway_seconds:
            raise Unauthenticated(f"the {what} must expire within {client_rules.MAX_ASSERTION_LIFETIME_SECONDS}s",
                                  reason="ASSERTION_LIFETIME_TOO_LONG", metadata={"token": what, **where})
        if not uow.assertions.remember(client.client_id, str(claims["jti"])[:200],
                                       datetime.fromtimestamp(expires_at + self.policy.leeway_seconds, UTC)):
            raise Unauthenticated(f"the {what} jti was already used; sign a new assertion for every request",
                                  reason="ASSERTION_REPLAYED", metadata={"token": what, **where})

    # ---- token exchange ------------------------------------------------------------------------------------

    def exchange(self, request: ExchangeRequest, caller: Principal | None) -> tuple[IssuedTokens, Delegation]:
        if request.requested_token_type not in ("", ACCESS_TOKEN_TYPE_URN):
            raise InvalidArgument.single("requested_token_type", f"only {ACCESS_TOKEN_TYPE_URN} is issued",
                                         reason="UNSUPPORTED_TOKEN_TYPE")
        if request.actor_token:
            if request.actor_token_type not in ("", ACCESS_TOKEN_TYPE_URN):
                raise InvalidArgument.single("actor_token_type", f"must be {ACCESS_TOKEN_TYPE_URN}",
                                             reason="UNSUPPORTED_TOKEN_TYPE")
            actor = self.verify_access_token(request.actor_token, scope_rules.AUDIENCE_IDENTITY)
        elif caller is not None:
            actor = caller
        else:
            raise Unauthenticated("send the actor's access token as actor_token or as the bearer token",
                                  reason="MISSING_ACTOR_TOKEN")
        target = scope_rules.audience(request.audience)
        subject = self._exchange_subject(request)
        try:
            consent.check_actor(actor)
            with self._uow() as uow:
                delegation = consent.choose(uow.delegations.live_for_principal(subject, self.now()), actor,
                                            subject, target, self.now())
                actor_scopes: tuple[str, ...] = ()
                if actor.kind == KIND_CLIENT:
                    registered = uow.clients.get(actor.client_id)
                    actor_scopes = registered.scopes if registered else ()
                granted = scope_rules.grant(request.scope, actor_scopes, target) if request.scope else ()
                act: dict[str, Any] = {"sub": actor.subject, "dvc_kind": actor.kind, "relation": delegation.relation}
                if actor.agency:
                    act["agency"] = actor.agency
                if actor.client_id:
                    act["client_id"] = actor.client_id
                remaining = int((delegation.expires_at - self.now()).total_seconds())
                level = actor.level_of_assurance if actor.kind == KIND_CITIZEN else consent.CONSENT_LEVEL
                tokens = self._mint(subject=subject, kind=KIND_CITIZEN, audience=target, scopes=granted, level=level,
                                    act=act, lifetime=max(1, remaining))
                self._audit(uow, "token.exchanged", actor=actor.subject, subject=subject, audience=target,
                            delegation_id=delegation.delegation_id, relation=delegation.relation, jti=tokens.jti)
                uow.commit()
        except (PermissionDenied, InvalidArgument) as error:
            self._audit_failure("token.exchange_refused", error, actor=actor.subject, subject=subject,
                                audience=target)
            raise
        return tokens, delegation

    def _exchange_subject(self, request: ExchangeRequest) -> str:
        if request.subject_token_type == NATIONAL_ID_TOKEN_TYPE_URN:
            return subjects.national_id(request.subject_token, "subject_token")
        if request.subject_token_type == ACCESS_TOKEN_TYPE_URN:
            subject = self.verify_access_token(request.subject_token)
            if subject.kind != KIND_CITIZEN or subject.actor is not None:
                raise InvalidArgument.single("subject_token", "must be a citizen's own access token",
                                             reason="SUBJECT_NOT_A_CITIZEN")
            return subject.subject
        raise InvalidArgument.single("subject_token_type", f"must be {ACCESS_TOKEN_TYPE_URN} or "
                                                           f"{NATIONAL_ID_TOKEN_TYPE_URN}",
                                     reason="UNSUPPORTED_TOKEN_TYPE")

    # ---- introspection, revocation, logout -----------------------------------------------------------------

    def introspect(self, token: str) -> Introspection:
        """Local signature check (servicekit's verifier) plus one indexed deny-list read; nothing else."""
        if not token:
            raise InvalidArgument.single("token", "is required")
        principal = self.verify_access_token(token)
        return Introspection(principal.claims, _kid(token))

    def revoke(self, *, token: str = "", token_type_hint: str = "", jti: str = "",
               jti_expires_at: datetime | None = None, reason: str = "", caller: Principal | None = None) -> Revocation:
        now = self.now()
        reason = reason[:200] or "revoked on request"
        if jti:
            if caller is None:
                raise Unauthenticated("revoking by jti needs an admin's access token", reason="MISSING_TOKEN")
            caller.require_scope(scope_rules.ADMIN_SCOPE)
            latest = now + timedelta(seconds=self.policy.access_token_seconds + self.policy.leeway_seconds)
            expires_at = min(jti_expires_at or latest, now + timedelta(days=1))
            with self._uow() as uow:
                added = uow.revocations.add(jti[:64], expires_at, now, reason)
                self._audit(uow, "token.revoked", actor=caller.subject, subject="", jti=jti[:64], by="jti",
                            reason=reason)
                uow.commit()
            return Revocation((jti[:64],) if added else (), False)
        if not token:
            raise InvalidArgument.single("token", "send the token to revoke (or a jti, as an admin)")
        if token_type_hint == "refresh_token" or refresh_rules.looks_like_refresh_token(token):
            with self._uow() as uow:
                row = uow.refresh_tokens.get(refresh_rules.token_hash(token), for_update=True)
                if row is None:
                    # RFC 7009: an unknown token is not an error; nothing is revealed about it.
                    return Revocation((), False)
                revoked = self._end_family(uow, row.family_id, row.subject, reason)
                self._audit(uow, "token.revoked", actor=caller.subject if caller else row.subject,
                            subject=row.subject, family_id=row.family_id, by="refresh_token",
                            revoked_jtis=len(revoked), reason=reason)
                uow.commit()
            return Revocation(tuple(revoked), True)
        try:
            principal = self.verify_access_token(token, check_revoked=False)
        except Unauthenticated as error:
            if error.reason == "TOKEN_EXPIRED":
                return Revocation((), False)  # it can no longer be used: nothing to deny-list
            raise
        with self._uow() as uow:
            added = uow.revocations.add(principal.token_id, datetime.fromtimestamp(principal.expires_at, UTC), now,
                                        reason, principal.subject)
            self._audit(uow, "token.revoked", actor=caller.subject if caller else principal.subject,
                        subject=principal.subject, jti=principal.token_id, by="access_token", reason=reason)
            uow.commit()
        return Revocation((principal.token_id,) if added else (), False)

    def logout(self, refresh_token: str) -> int:
        if not refresh_token:
            raise InvalidArgument.single("refresh_token", "is required")
        with self._uow() as uow:
            row = uow.refresh_tokens.get(refresh_rules.token_hash(refresh_token), for_update=True)
            if row is None:
                raise Unauthenticated("the refresh token is not one we issued", reason="INVALID_REFRESH_TOKEN")
            revoked = self._end_family(uow, row.family_id, row.subject, "logout")
            self._audit(uow, "logout", actor=row.subject, subject=row.subject, family_id=row.family_id,
                        revoked_jtis=len(revoked))
            uow.commit()
        return len(revoked)

    def revoked_jtis(self) -> list[str]:
        """Revoked token ids that have not expired yet: the deny-list other services poll."""
        with self._uow() as uow:
            return uow.revocations.active(self.now())

    def purge_expired(self) -> None:
        """Drop deny-list entries, assertion ids and logins nobody can use any more."""
        cutoff = self.now() - timedelta(seconds=self.policy.leeway_seconds + 60)
        with self._uow() as uow:
            uow.revocations.purge(cutoff)
            uow.assertions.purge(cutoff)
            uow.logins.purge(cutoff - timedelta(hours=1))
            uow.commit()

    # ---- keys, user info -----------------------------------------------------------------------------------

    def jwks(self) -> tuple[dict[str, Any], str]:
        kid, _ = self.keyring.signing_key()
        return self.keyring.jwks(), kid

    def user_info(self, principal: Principal) -> UserInfo:
        with self._uow() as uow:
            account = uow.accounts.get(principal.subject) if principal.kind != KIND_CLIENT else None
        return UserInfo(principal, account)

    # ---- delegations ---------------------------------------------------------------------------------------

    def grant_delegation(self, caller: Principal, request: consent.GrantRequest, idempotency_key: str) -> Delegation:
        now = self.now()
        valid = consent.validate_grant(caller, request, now)
        with self._uow() as uow:
            if idempotency_key:
                existing = uow.delegations.by_idempotency_key(valid.granted_by, idempotency_key)
                if existing is not None:
                    return existing
            delegation = Delegation(str(uuid.uuid4()), valid.principal_subject, valid.delegate_kind,
                                    valid.delegate_id, valid.relation, valid.audiences, valid.purpose, now,
                                    valid.expires_at, valid.granted_by)
            uow.delegations.add(delegation, idempotency_key or None)
            self._audit(uow, "delegation.granted", actor=caller.subject, subject=delegation.principal_subject,
                        delegation_id=delegation.delegation_id, relation=delegation.relation,
                        delegate=f"{delegation.delegate_kind}:{delegation.delegate_id}",
                        audiences=list(delegation.audiences))
            uow.commit()
        return delegation

    def revoke_delegation(self, caller: Principal, delegation_id: str) -> Delegation:
        with self._uow() as uow:
            delegation = uow.delegations.get(delegation_id)
            involved = delegation is not None and caller.subject in (delegation.principal_subject,
                                                                     delegation.delegate_id)
            if delegation is None or not (involved or caller.has_scope(scope_rules.ADMIN_SCOPE)):
                # Someone not involved learns nothing about whether the id exists.
                raise NotFound("no such delegation", reason="DELEGATION_NOT_FOUND")
            consent.check_can_revoke(caller, delegation)
            now = self.now()
            uow.delegations.revoke(delegation_id, now)
            self._audit(uow, "delegation.revoked", actor=caller.subject, subject=delegation.principal_subject,
                        delegation_id=delegation_id, relation=delegation.relation)
            uow.commit()
        return replace(delegation, revoked_at=delegation.revoked_at or now)

    def list_delegations(self, caller: Principal, subject: str, include_inactive: bool, size: int,
                         token: str) -> tuple[list[Delegation], str]:
        whose = consent.check_can_list(caller, subject)
        limit = page_size(size)
        with self._uow() as uow:
            rows = uow.delegations.involving(whose, include_inactive, self.now(), decode_cursor(token), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(rows[-1].delegation_id) if more else ""

    # ---- admin ---------------------------------------------------------------------------------------------

    def register_client(self, caller: Principal, registration: client_rules.Registration,
                        idempotency_key: str) -> ClientCredentials:
        caller.require_scope(scope_rules.ADMIN_SCOPE)
        now = self.now()
        with self._uow() as uow:
            existing = uow.clients.get(registration.client_id)
            if existing is not None:
                if idempotency_key and existing.registration_key == idempotency_key:
                    return ClientCredentials(existing, "")
                raise AlreadyExists(f"client {registration.client_id!r} is already registered",
                                    reason="CLIENT_EXISTS")
            secret = secrets.token_urlsafe(32) if registration.auth_method == client_rules.AUTH_CLIENT_SECRET else ""
            client = Client(registration.client_id, registration.display_name, registration.agency,
                            registration.scopes, registration.auth_method, registration.public_jwks,
                            hash_secret(secret) if secret else None, None, None, now, now,
                            registration_key=idempotency_key or None)
            uow.clients.add(client)
            self._audit(uow, "client.registered", actor=caller.subject, subject=client.client_id,
                        agency=client.agency, scopes=list(client.scopes), auth_method=client.auth_method)
            uow.commit()
        return ClientCredentials(client, secret)

    def rotate_client_credentials(self, caller: Principal, client_id: str, public_jwks_json: str,
                                  grace_seconds: int, idempotency_key: str) -> ClientCredentials:
        # Checked before the lookup, so a client cannot even learn whether another client id exists.
        client_rules.check_can_rotate(caller, client_id)
        if not 0 <= grace_seconds <= client_rules.MAX_SECRET_GRACE_SECONDS:
            raise InvalidArgument.single("previous_secret_grace_seconds",
                                         f"must be between 0 and {client_rules.MAX_SECRET_GRACE_SECONDS}")
        now = self.now()
        with self._uow() as uow:
            client = uow.clients.get(client_id, for_update=True)
            if client is None:
                raise NotFound(f"no client {client_id!r}", reason="CLIENT_NOT_FOUND")
            if idempotency_key and client.rotation_key == idempotency_key:
                return ClientCredentials(client, "")
            secret = ""
            if client.auth_method == client_rules.AUTH_PRIVATE_KEY_JWT:
                rotated = replace(client, public_jwks=client_rules.parse_public_jwks(public_jwks_json),
                                  rotated_at=now, rotation_key=idempotency_key or None)
            else:
                if public_jwks_json:
                    raise InvalidArgument.single("public_jwks_json", "this client authenticates with a secret")
                secret = secrets.token_urlsafe(32)
                rotated = replace(client, secret_hash=hash_secret(secret), previous_secret_hash=client.secret_hash,
                                  previous_secret_valid_until=now + timedelta(seconds=grace_seconds),
                                  rotated_at=now, rotation_key=idempotency_key or None)
            uow.clients.update_credentials(rotated)
            self._audit(uow, "client.credentials_rotated", actor=caller.subject, subject=client_id,
                        auth_method=client.auth_method, previous_secret_grace_seconds=grace_seconds)
            uow.commit()
        return ClientCredentials(rotated, secret)

    def register_provider(self, caller: Principal | None, provider: Provider, client_secret: str = "") -> Provider:
        """Admin registration (``caller`` set) or the start-up sync of the providers file (``caller`` None);
        the file never overwrites an entry an admin registered."""
        if caller is not None:
            caller.require_scope(scope_rules.ADMIN_SCOPE)
            provider = replace(provider, source="admin", client_secret=client_secret)
        provider = provider_rules.validate(provider)
        with self._uow() as uow:
            existing = uow.providers.get(provider.provider_id, lambda blob, pid: "")
            if caller is None and existing is not None and existing.source == "admin":
                return existing
            ciphertext = (self._encryptor.encrypt(provider.client_secret.encode("utf-8"),
                                                  f"provider:{provider.provider_id}")
                          if provider.client_secret else None)
            uow.providers.upsert(provider, ciphertext, self.now())
            if caller is not None or existing is None or existing != replace(provider, client_secret=""):
                self._audit(uow, "provider.registered", actor=caller.subject if caller else "providers-file",
                            subject=provider.provider_id, issuer=provider.issuer, kind=provider.kind,
                            source=provider.source)
            uow.commit()
        return provider

    def sync_providers_file(self, providers: list[Provider]) -> None:
        """Make the registry match the providers file: entries added or updated, entries removed from the file
        removed here (an entry an admin registered through the API is never touched)."""
        for provider in providers:
            self.register_provider(None, provider)
        with self._uow() as uow:
            for provider_id in uow.providers.remove_file_entries_except([p.provider_id for p in providers]):
                self._audit(uow, "provider.removed", actor="providers-file", subject=provider_id)
            uow.commit()

    def list_providers(self, caller: Principal, size: int, token: str) -> tuple[list[ProviderView], str]:
        caller.require_scope(scope_rules.ADMIN_SCOPE)
        limit = page_size(size)
        with self._uow() as uow:
            rows = uow.providers.page(decode_cursor(token), limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return [ProviderView(p, has) for p, has in rows], encode_cursor(rows[-1][0].provider_id) if more else ""

    def rotate_signing_key(self, caller: Principal, activate_after_seconds: int, idempotency_key: str) -> KeyRotation:
        caller.require_scope(scope_rules.ADMIN_SCOPE)
        if not 0 <= activate_after_seconds <= 7 * 24 * 3600:
            raise InvalidArgument.single("activate_after_seconds", "must be between 0 and 604800")
        with self._uow() as uow:
            existing = uow.keys.by_idempotency_key(idempotency_key) if idempotency_key else None
            if existing is None:
                row = self.keyring.rotate(uow.keys, timedelta(seconds=activate_after_seconds),
                                          idempotency_key or None)
                self._audit(uow, "key.rotated", actor=caller.subject, subject=row.kid, kid=row.kid,
                            active_from=row.active_from.isoformat())
                uow.commit()
            else:
                row = existing
        self.keyring.invalidate()
        return KeyRotation(row, tuple(jwk["kid"] for jwk in self.keyring.jwks()["keys"]))

    def list_audit_events(self, caller: Principal, event_type: str, subject: str, size: int,
                          token: str) -> tuple[list[AuditEvent], str]:
        caller.require_scope(scope_rules.ADMIN_SCOPE)
        limit = page_size(size, maximum=500)
        cursor = decode_cursor(token)
        try:
            before = int(cursor) if cursor else None
        except ValueError:
            raise InvalidArgument.single("page_token", "is not a page token from this API",
                                         reason="INVALID_PAGE_TOKEN") from None
        with self._uow() as uow:
            rows = uow.audit.page(event_type=event_type, subject=subject, before_id=before, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, encode_cursor(str(rows[-1].event_id)) if more else ""


def _missing(name: str, value: str) -> FieldViolation | None:
    return None if value else FieldViolation(name, "is required")
