"""Delegations: a citizen's consent for an agency or another citizen to act for them, and guardianship of a
minor; the rules for granting, revoking and using them in a token exchange."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from identity_service.domain import scopes, subjects
from servicekit.auth import KIND_CITIZEN, KIND_CLIENT, KIND_OFFICIAL, Principal
from servicekit.errors import InvalidArgument, PermissionDenied, ViolationCollector

RELATION_CONSENT = "consent"
RELATION_GUARDIAN = "guardian"
DELEGATE_AGENCY = "agency"
DELEGATE_CITIZEN = "citizen"

DELEGABLE_AUDIENCES = (scopes.AUDIENCE_PAYMENTS, scopes.AUDIENCE_WALLET)
DEFAULT_TTL = timedelta(days=30)
MAX_CONSENT_TTL = timedelta(days=90)
MAX_GUARDIAN_TTL = timedelta(days=366 * 18)
# Consent gives another party access to a citizen's data: it must come from a level 2 (in-person verified) login.
CONSENT_LEVEL = 2
# A citizen acting for someone else (guardian or relative) must have logged in at level 2 as well.
ACTING_CITIZEN_LEVEL = 2
GRANTED_BY_UPSTREAM_PREFIX = "upstream:"


@dataclass(frozen=True)
class Delegation:
    """Permission for a delegate to act for ``principal_subject`` (a citizen) within some audiences."""

    delegation_id: str
    principal_subject: str
    delegate_kind: str
    delegate_id: str
    relation: str
    audiences: tuple[str, ...]
    purpose: str
    created_at: datetime
    expires_at: datetime
    granted_by: str
    revoked_at: datetime | None = None

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def admits(self, actor: Principal) -> bool:
        """Does this delegation name ``actor``? Agencies act through their officials and machine clients."""
        if self.delegate_kind == DELEGATE_AGENCY:
            return actor.kind in (KIND_OFFICIAL, KIND_CLIENT) and actor.agency == self.delegate_id
        return actor.kind == KIND_CITIZEN and actor.subject == self.delegate_id


@dataclass(frozen=True)
class GrantRequest:
    """What a caller asks to delegate."""

    principal_subject: str
    delegate_kind: str
    delegate_id: str
    relation: str
    audiences: tuple[str, ...]
    purpose: str
    ttl: timedelta | None


@dataclass(frozen=True)
class ValidGrant:
    """A grant request that passed every rule, normalised."""

    principal_subject: str
    delegate_kind: str
    delegate_id: str
    relation: str
    audiences: tuple[str, ...]
    purpose: str
    expires_at: datetime
    granted_by: str


def validate_grant(caller: Principal, request: GrantRequest, now: datetime) -> ValidGrant:
    """Who may grant what: a citizen consents for themselves at level 2; only an admin records guardianship."""
    if request.relation == RELATION_CONSENT:
        if caller.kind != KIND_CITIZEN or caller.actor is not None:
            raise PermissionDenied("only the citizen themselves can give consent", reason="NOT_THE_CITIZEN")
        if request.principal_subject and request.principal_subject != caller.subject:
            raise PermissionDenied("a citizen can only give consent for themselves", reason="NOT_THE_CITIZEN")
        caller.require_level(CONSENT_LEVEL)
        principal = caller.subject
        max_ttl = MAX_CONSENT_TTL
    elif request.relation == RELATION_GUARDIAN:
        caller.require_scope(scopes.ADMIN_SCOPE)
        if request.delegate_kind != DELEGATE_CITIZEN:
            raise InvalidArgument.single("delegate_kind", "a guardian is a citizen", reason="GUARDIAN_NOT_CITIZEN")
        principal = subjects.national_id(request.principal_subject, "principal_subject")
        max_ttl = MAX_GUARDIAN_TTL
    else:
        raise InvalidArgument.single("relation", "must be consent or guardian", reason="UNKNOWN_RELATION")
    problems = ViolationCollector()
    delegate_id = request.delegate_id.strip()
    if request.delegate_kind == DELEGATE_AGENCY:
        try:
            delegate_id = subjects.agency_code(delegate_id, "delegate_id")
        except InvalidArgument as error:
            problems.violations.extend(error.violations)
    elif request.delegate_kind == DELEGATE_CITIZEN:
        if not subjects.is_national_id(delegate_id):
            problems.add("delegate_id", "must be the delegate citizen's 12-digit national ID")
        elif delegate_id == principal:
            problems.add("delegate_id", "a citizen cannot delegate to themselves")
    else:
        problems.add("delegate_kind", "must be agency or citizen")
    audiences = tuple(sorted(set(request.audiences))) or DELEGABLE_AUDIENCES
    for audience in audiences:
        if audience not in DELEGABLE_AUDIENCES:
            problems.add("audiences", f"{audience!r} cannot be delegated; use {', '.join(DELEGABLE_AUDIENCES)}")
    ttl = request.ttl if request.ttl is not None else DEFAULT_TTL
    if ttl <= timedelta(0) or ttl > max_ttl:
        problems.add("ttl_seconds", f"must be positive and at most {int(max_ttl.total_seconds())} seconds")
    if len(request.purpose) > 500:
        problems.add("purpose", "at most 500 characters")
    problems.raise_if_any("the delegation request is invalid")
    granted_by = caller.subject if request.relation == RELATION_CONSENT else f"admin:{caller.subject}"
    return ValidGrant(principal, request.delegate_kind, delegate_id, request.relation, audiences,
                      request.purpose.strip(), now + ttl, granted_by)


def check_can_revoke(caller: Principal, delegation: Delegation) -> None:
    """The citizen ends their own consent; guardianship (and anything else) only an admin ends."""
    if caller.has_scope(scopes.ADMIN_SCOPE):
        return
    if (delegation.relation == RELATION_CONSENT and caller.kind == KIND_CITIZEN and caller.actor is None
            and caller.subject == delegation.principal_subject):
        return
    raise PermissionDenied("only the citizen who consented, or an admin, can revoke this delegation",
                           reason="NOT_THE_GRANTOR")


def check_can_list(caller: Principal, subject: str) -> str:
    """Whose delegations the caller may list: their own, or anyone's for an admin."""
    if not subject or subject == caller.subject:
        return caller.subject
    if caller.has_scope(scopes.ADMIN_SCOPE):
        return subject
    raise PermissionDenied("you can only list your own delegations", reason="NOT_YOUR_DELEGATIONS")


def check_actor(actor: Principal) -> None:
    """Who may act for a citizen at all: no chains of delegation, and citizens only after a level 2 login."""
    if actor.actor is not None:
        raise PermissionDenied("a delegated token cannot be exchanged again", reason="DELEGATION_CHAIN_NOT_ALLOWED")
    if actor.kind == KIND_CITIZEN:
        actor.require_level(ACTING_CITIZEN_LEVEL)
    elif actor.kind not in (KIND_OFFICIAL, KIND_CLIENT):
        raise PermissionDenied(f"a {actor.kind or 'token without kind'} cannot act for a citizen",
                               reason="ACTOR_NOT_ALLOWED")


def choose(delegations: Iterable[Delegation], actor: Principal, subject: str, audience: str,
           now: datetime) -> Delegation:
    """The live delegation from ``subject`` that admits ``actor`` for ``audience``; guardianship first."""
    if actor.subject == subject:
        raise InvalidArgument.single("subject_token", "the actor and the subject are the same",
                                     reason="SELF_EXCHANGE")
    matching = [d for d in delegations if d.principal_subject == subject and d.is_live(now) and d.admits(actor)
                and audience in d.audiences]
    if not matching:
        raise PermissionDenied(f"{subject} has not authorised this actor to act for them in {audience}",
                               reason="NO_DELEGATION", metadata={"audience": audience})
    matching.sort(key=lambda d: (d.relation != RELATION_GUARDIAN, -d.expires_at.timestamp()))
    return matching[0]
