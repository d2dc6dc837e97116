"""Person login through an upstream OIDC provider (code + PKCE + state + nonce), and refresh-token rotation."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlparse

from identity_service.adapters.repositories import (
    Account,
    LoginSession,
)
from identity_service.domain import consent, pkce
from identity_service.domain import providers as provider_rules
from identity_service.domain import refresh as refresh_rules
from identity_service.domain import scopes as scope_rules
from identity_service.domain.consent import Delegation
from identity_service.domain.providers import Provider, UpstreamIdentity
from identity_service.service_layer.core import (
    DEFAULT_PROVIDER,
    UPSTREAM_GUARDIANSHIP_TTL,
    HandlerCore,
    IssuedTokens,
    missing_field,
)
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit.errors import (
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)


@dataclass(frozen=True)
class LoginStarted:
    """Where to send the browser, and the state that CompleteLogin needs."""

    authorization_url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class LoginCompleted:
    """The platform tokens and who logged in."""

    tokens: IssuedTokens
    subject: str
    identity: UpstreamIdentity
    returning: bool


class LoginHandlers(HandlerCore):
    """StartLogin, CompleteLogin, RefreshToken."""

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
            missing = [missing_field("state", state), missing_field("code", code)]
            raise InvalidArgument("state and code are both required", [field for field in missing if field])
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
                self._end_delegation(uow, delegation, grantor, now)

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
