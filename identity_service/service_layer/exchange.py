"""Token exchange (RFC 8693) under consent or guardianship, and the delegations that allow it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from identity_service.domain import consent, subjects
from identity_service.domain import scopes as scope_rules
from identity_service.domain.consent import Delegation
from identity_service.service_layer.core import (
    ACCESS_TOKEN_TYPE_URN,
    NATIONAL_ID_TOKEN_TYPE_URN,
    HandlerCore,
    IssuedTokens,
    decode_cursor,
    encode_cursor,
    page_size,
)
from servicekit.auth import KIND_CITIZEN, KIND_CLIENT, Principal
from servicekit.errors import (
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)


@dataclass(frozen=True)
class ExchangeRequest:
    """An RFC 8693 token-exchange request."""

    subject_token: str
    subject_token_type: str
    audience: str
    actor_token: str = ""
    actor_token_type: str = ""
    scope: str = ""
    requested_token_type: str = ""


class DelegationHandlers(HandlerCore):
    """ExchangeToken, GrantDelegation, RevokeDelegation, ListDelegations."""

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
                delegation = consent.choose(uow.delegations.live_for_principal(subject, self.now(), lock=True),
                                            actor, subject, target, self.now())
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
                uow.delegations.record_token(delegation.delegation_id, tokens.jti, tokens.expires_at)
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
            self._end_delegation(uow, delegation, caller.subject, now)
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
