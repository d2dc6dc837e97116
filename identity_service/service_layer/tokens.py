"""Introspection, revocation, logout, keys, user info and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from identity_service.adapters.repositories import (
    Account,
    AuditEvent,
    SigningKeyRow,
    still_accepted_since,
)
from identity_service.domain import refresh as refresh_rules
from identity_service.domain import scopes as scope_rules
from identity_service.service_layer.core import (
    HandlerCore,
    decode_cursor,
    encode_cursor,
    kid_of,
    page_size,
)
from servicekit.auth import KIND_CLIENT, Principal
from servicekit.errors import (
    InvalidArgument,
    Unauthenticated,
)


@dataclass(frozen=True)
class Introspection:
    """The verified claims of an active token and the key that signed it."""

    claims: dict[str, Any]
    kid: str


@dataclass(frozen=True)
class Revocation:
    """What a revocation put on the deny-list."""

    revoked_jtis: tuple[str, ...]
    family_revoked: bool


@dataclass(frozen=True)
class UserInfo:
    """The caller and their stored account (none for machine clients)."""

    principal: Principal
    account: Account | None


@dataclass(frozen=True)
class KeyRotation:
    """The new signing key and every key id still published."""

    key: SigningKeyRow
    published_kids: tuple[str, ...]


class TokenHandlers(HandlerCore):
    """IntrospectToken, RevokeToken, Logout, GetJwks, GetUserInfo, RotateSigningKey, ListAuditEvents."""

    # ---- introspection, revocation, logout -----------------------------------------------------------------

    def introspect(self, token: str) -> Introspection:
        """Local signature check (servicekit's verifier) plus one indexed deny-list read; nothing else."""
        if not token:
            raise InvalidArgument.single("token", "is required")
        principal = self.verify_access_token(token)
        return Introspection(principal.claims, kid_of(token))

    def revoke(self, *, token: str = "", jti: str = "", jti_expires_at: datetime | None = None, reason: str = "",
               caller: Principal | None = None) -> Revocation:
        """Revoke an access or refresh token (RFC 7009), or a bare jti as an admin. A caller's token_type_hint is
        not taken: it is only advisory, and our refresh tokens carry a prefix access tokens never have, so the
        token itself says which kind it is (a wrong hint can no longer make a revocation silently miss)."""
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
        if refresh_rules.looks_like_refresh_token(token):
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
        # Past any verifier's leeway (not just ours), with a minute's margin for clock skew between replicas.
        cutoff = still_accepted_since(self.now()) - timedelta(seconds=60)
        with self._uow() as uow:
            uow.revocations.purge(cutoff)
            uow.delegations.purge_tokens(cutoff)
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
