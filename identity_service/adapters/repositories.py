"""Repositories over identity's tables: rows in, domain objects out, one session (transaction) each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from identity_service.adapters import orm
from identity_service.domain.clients import Client
from identity_service.domain.consent import Delegation
from identity_service.domain.providers import ClaimMapping, Provider
from servicekit.auth import MAX_LEEWAY_SECONDS


def insert_unless_duplicate(session: Session, statement: Any) -> bool:
    """Run an INSERT in a savepoint; False (and the transaction intact) when a unique key says the row exists,
    so concurrent writers of the same row (two replicas, two requests) never turn a race into an error."""
    try:
        with session.begin_nested():
            session.execute(statement)
    except IntegrityError:
        return False
    return True


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _aware(moment: datetime) -> datetime:
    result = aware(moment)
    assert result is not None
    return result


def still_accepted_since(now: datetime) -> datetime:
    """The oldest expiry a verifier may still accept at ``now``: servicekit's verifiers allow up to
    MAX_LEEWAY_SECONDS of clock leeway past ``exp``, so a revoked token must stay deny-listed that much longer."""
    return now - timedelta(seconds=MAX_LEEWAY_SECONDS)


@dataclass(frozen=True)
class SigningKeyRow:
    """One signing key as stored (private half encrypted)."""

    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    private_key_encrypted: bytes
    created_at: datetime
    active_from: datetime
    publish_until: datetime | None


class SigningKeyRepository:
    """Signing keys."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _row(row: Any) -> SigningKeyRow:
        return SigningKeyRow(row.kid, row.algorithm, dict(row.public_jwk), bytes(row.private_key_encrypted),
                             _aware(row.created_at), _aware(row.active_from), aware(row.publish_until))

    def published(self, now: datetime) -> list[SigningKeyRow]:
        """Keys verifiers must know: every key that may sign now or later, and retired ones until their tokens end."""
        table = orm.signing_keys
        rows = self.session.execute(select(table).where(or_(table.c.publish_until.is_(None),
                                                            table.c.publish_until > now))
                                    .order_by(table.c.active_from.desc())).all()
        return [self._row(row) for row in rows]

    def by_idempotency_key(self, key: str) -> SigningKeyRow | None:
        table = orm.signing_keys
        row = self.session.execute(select(table).where(table.c.idempotency_key == key)).first()
        return self._row(row) if row else None

    def add(self, row: SigningKeyRow, idempotency_key: str | None = None) -> None:
        self.session.execute(insert(orm.signing_keys).values(
            kid=row.kid, algorithm=row.algorithm, public_jwk=row.public_jwk,
            private_key_encrypted=row.private_key_encrypted, created_at=row.created_at,
            active_from=row.active_from, publish_until=row.publish_until, idempotency_key=idempotency_key))

    def retire_others(self, kid: str, publish_until: datetime) -> None:
        """Older keys stop signing once ``kid`` is active and stay published until their last token expires."""
        table = orm.signing_keys
        self.session.execute(update(table).where(table.c.kid != kid, table.c.publish_until.is_(None))
                             .values(publish_until=publish_until))


def _provider_from_row(row: Any, secret: str) -> Provider:
    mapping = dict(row.claim_mapping)
    return Provider(
        provider_id=row.provider_id, kind=row.kind, issuer=row.issuer, discovery_url=row.discovery_url,
        client_id=row.client_id, claim_mapping=ClaimMapping(**mapping), display_name=row.display_name,
        audience=row.audience, client_secret=secret, allowed_algorithms=tuple(row.allowed_algorithms),
        upstream_scopes=tuple(row.upstream_scopes), default_level=row.default_level,
        role_scopes={role: tuple(scopes) for role, scopes in dict(row.role_scopes).items()}, source=row.source,
        allowed_agencies=tuple(row.allowed_agencies))


class ProviderRepository:
    """Providers; the client secret column is ciphertext, opened by the caller's ``open_secret``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, provider_id: str, open_secret: Any) -> Provider | None:
        table = orm.identity_providers
        row = self.session.execute(select(table).where(table.c.provider_id == provider_id)).first()
        if row is None:
            return None
        secret = open_secret(row.client_secret_encrypted, row.provider_id) if row.client_secret_encrypted else ""
        return _provider_from_row(row, secret)

    def page(self, after: str, limit: int) -> list[tuple[Provider, bool]]:
        table = orm.identity_providers
        rows = self.session.execute(select(table).where(table.c.provider_id > after)
                                    .order_by(table.c.provider_id).limit(limit)).all()
        return [(_provider_from_row(row, ""), row.client_secret_encrypted is not None) for row in rows]

    def remove_file_entries_except(self, keep: list[str]) -> list[str]:
        """Drop providers that came from the file but are no longer in it; admin-registered ones stay."""
        table = orm.identity_providers
        stale = list(self.session.execute(select(table.c.provider_id).where(
            table.c.source == "file", table.c.provider_id.not_in(keep))).scalars())
        if stale:
            self.session.execute(delete(table).where(table.c.provider_id.in_(stale)))
        return stale

    def upsert(self, provider: Provider, secret_ciphertext: bytes | None, now: datetime) -> None:
        table = orm.identity_providers
        mapping = provider.claim_mapping
        values = dict(
            kind=provider.kind, display_name=provider.display_name, issuer=provider.issuer,
            discovery_url=provider.discovery_url, client_id=provider.client_id, audience=provider.audience,
            client_secret_encrypted=secret_ciphertext, allowed_algorithms=list(provider.allowed_algorithms),
            claim_mapping={"national_id": mapping.national_id, "name": mapping.name, "agency": mapping.agency,
                           "roles": mapping.roles, "level": mapping.level, "dependents": mapping.dependents},
            upstream_scopes=list(provider.upstream_scopes), default_level=provider.default_level,
            role_scopes={role: list(scopes) for role, scopes in provider.role_scopes.items()},
            source=provider.source, allowed_agencies=list(provider.allowed_agencies), updated_at=now)
        statement = update(table).where(table.c.provider_id == provider.provider_id).values(**values)
        if self.session.execute(statement).rowcount:  # type: ignore[attr-defined]
            return
        if not insert_unless_duplicate(self.session, insert(table).values(provider_id=provider.provider_id,
                                                                          **values)):
            self.session.execute(statement)


class ClientRepository:
    """Machine clients."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _row(row: Any) -> Client:
        return Client(
            client_id=row.client_id, display_name=row.display_name, agency=row.agency, scopes=tuple(row.scopes),
            auth_method=row.auth_method, public_jwks=dict(row.public_jwks) if row.public_jwks else None,
            secret_hash=row.secret_hash, previous_secret_hash=row.previous_secret_hash,
            previous_secret_valid_until=aware(row.previous_secret_valid_until),
            created_at=_aware(row.created_at), rotated_at=_aware(row.rotated_at), disabled=row.disabled,
            registration_key=row.registration_key, rotation_key=row.rotation_key)

    def get(self, client_id: str, for_update: bool = False) -> Client | None:
        table = orm.clients
        query = select(table).where(table.c.client_id == client_id)
        row = self.session.execute(query.with_for_update() if for_update else query).first()
        return self._row(row) if row else None

    def add(self, client: Client) -> None:
        self.session.execute(insert(orm.clients).values(
            client_id=client.client_id, display_name=client.display_name, agency=client.agency,
            scopes=list(client.scopes), auth_method=client.auth_method, public_jwks=client.public_jwks,
            secret_hash=client.secret_hash, previous_secret_hash=None, previous_secret_valid_until=None,
            created_at=client.created_at, rotated_at=client.rotated_at, disabled=client.disabled,
            registration_key=client.registration_key, rotation_key=None))

    def update_credentials(self, client: Client) -> None:
        table = orm.clients
        self.session.execute(update(table).where(table.c.client_id == client.client_id).values(
            public_jwks=client.public_jwks, secret_hash=client.secret_hash,
            previous_secret_hash=client.previous_secret_hash,
            previous_secret_valid_until=client.previous_secret_valid_until, rotated_at=client.rotated_at,
            rotation_key=client.rotation_key))


@dataclass(frozen=True)
class LoginSession:
    """A started login: the secrets that bind the upstream's answer to it."""

    state: str
    provider_id: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    audience: str
    created_at: datetime
    expires_at: datetime
    completed_at: datetime | None = None


class LoginSessionRepository:
    """Started logins, each completed at most once."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, login: LoginSession) -> None:
        self.session.execute(insert(orm.login_sessions).values(
            state=login.state, provider_id=login.provider_id, nonce=login.nonce, code_verifier=login.code_verifier,
            redirect_uri=login.redirect_uri, audience=login.audience, created_at=login.created_at,
            expires_at=login.expires_at, completed_at=None))

    def claim(self, state: str, now: datetime) -> tuple[LoginSession | None, bool]:
        """Fetch the login for ``state`` and mark it completed in the same statement's lock, so two callbacks
        with the same state cannot both proceed. Returns (login, was_already_completed)."""
        table = orm.login_sessions
        row = self.session.execute(select(table).where(table.c.state == state).with_for_update()).first()
        if row is None:
            return None, False
        login = LoginSession(row.state, row.provider_id, row.nonce, row.code_verifier, row.redirect_uri,
                             row.audience, _aware(row.created_at), _aware(row.expires_at), aware(row.completed_at))
        if login.completed_at is not None:
            return login, True
        self.session.execute(update(table).where(table.c.state == state).values(completed_at=now))
        return login, False

    def purge(self, before: datetime) -> None:
        self.session.execute(delete(orm.login_sessions).where(orm.login_sessions.c.expires_at < before))


@dataclass(frozen=True)
class Account:
    """A person who has logged in: subject, upstream attributes, first and last login."""

    subject: str
    kind: str
    national_id: str
    name: str
    agency: str
    roles: tuple[str, ...]
    level: int
    first_login_at: datetime
    last_login_at: datetime
    last_provider_id: str


class AccountRepository:
    """Accounts by subject."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, subject: str) -> Account | None:
        table = orm.accounts
        row = self.session.execute(select(table).where(table.c.subject == subject)).first()
        if row is None:
            return None
        return Account(row.subject, row.kind, row.national_id, row.name, row.agency, tuple(row.roles), row.level,
                       _aware(row.first_login_at), _aware(row.last_login_at), row.last_provider_id)

    def record_login(self, account: Account) -> bool:
        """Insert or refresh the account; True when the subject had logged in before."""
        table = orm.accounts
        values = dict(kind=account.kind, national_id=account.national_id, name=account.name,
                      agency=account.agency, roles=list(account.roles), level=account.level,
                      last_login_at=account.last_login_at, last_provider_id=account.last_provider_id)
        statement = update(table).where(table.c.subject == account.subject).values(**values)
        if self.session.execute(statement).rowcount:  # type: ignore[attr-defined]
            return True
        if insert_unless_duplicate(self.session, insert(table).values(
                subject=account.subject, first_login_at=account.first_login_at, **values)):
            return False
        self.session.execute(statement)  # a concurrent first login inserted it a moment ago
        return True


@dataclass(frozen=True)
class RefreshRow:
    """One refresh token (as a hash) of a login's family, and the access token issued with it."""

    token_hash: str
    family_id: str
    subject: str
    kind: str
    session: dict[str, Any]
    default_audience: str
    created_at: datetime
    expires_at: datetime
    family_expires_at: datetime
    access_jti: str
    access_expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class RefreshTokenRepository:
    """Refresh tokens and their families."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, token_hash: str, for_update: bool = False) -> RefreshRow | None:
        table = orm.refresh_tokens
        query = select(table).where(table.c.token_hash == token_hash)
        row = self.session.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            return None
        return RefreshRow(row.token_hash, row.family_id, row.subject, row.kind, dict(row.session),
                          row.default_audience, _aware(row.created_at), _aware(row.expires_at),
                          _aware(row.family_expires_at), row.access_jti, _aware(row.access_expires_at),
                          aware(row.used_at), aware(row.revoked_at))

    def add(self, row: RefreshRow) -> None:
        self.session.execute(insert(orm.refresh_tokens).values(
            token_hash=row.token_hash, family_id=row.family_id, subject=row.subject, kind=row.kind,
            session=row.session, default_audience=row.default_audience, created_at=row.created_at,
            expires_at=row.expires_at, family_expires_at=row.family_expires_at, access_jti=row.access_jti,
            access_expires_at=row.access_expires_at, used_at=None, revoked_at=None))

    def mark_used(self, token_hash: str, now: datetime) -> None:
        table = orm.refresh_tokens
        self.session.execute(update(table).where(table.c.token_hash == token_hash).values(used_at=now))

    def revoke_family(self, family_id: str, now: datetime) -> list[tuple[str, datetime]]:
        """End the family; returns (jti, expiry) of its access tokens that a verifier may still accept."""
        table = orm.refresh_tokens
        self.session.execute(update(table).where(table.c.family_id == family_id, table.c.revoked_at.is_(None))
                             .values(revoked_at=now))
        rows = self.session.execute(select(table.c.access_jti, table.c.access_expires_at)
                                    .where(table.c.family_id == family_id,
                                           table.c.access_expires_at > still_accepted_since(now))).all()
        return [(row.access_jti, _aware(row.access_expires_at)) for row in rows]


class RevocationRepository:
    """The jti deny-list every replica shares."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, jti: str, expires_at: datetime, now: datetime, reason: str, subject: str = "") -> bool:
        """Deny-list ``jti``; False when it already was."""
        return insert_unless_duplicate(self.session, insert(orm.revoked_tokens).values(
            jti=jti, expires_at=expires_at, revoked_at=now, reason=reason[:200], subject=subject[:128]))

    def active(self, now: datetime) -> list[str]:
        """Revoked ids of tokens a verifier may still accept (expiry plus leeway not yet passed)."""
        table = orm.revoked_tokens
        return list(self.session.execute(select(table.c.jti).where(table.c.expires_at > still_accepted_since(now))
                                         .order_by(table.c.jti)).scalars())

    def purge(self, before: datetime) -> None:
        self.session.execute(delete(orm.revoked_tokens).where(orm.revoked_tokens.c.expires_at < before))


class AssertionRepository:
    """Client assertion ids already accepted, kept until the assertion would have expired anyway."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def remember(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        """Record the assertion id; False if it was seen before (a replay)."""
        return insert_unless_duplicate(self.session, insert(orm.used_assertions).values(
            client_id=client_id, jti=jti, expires_at=expires_at))

    def purge(self, before: datetime) -> None:
        self.session.execute(delete(orm.used_assertions).where(orm.used_assertions.c.expires_at < before))


def _delegation(row: Any) -> Delegation:
    return Delegation(row.delegation_id, row.principal_subject, row.delegate_kind, row.delegate_id, row.relation,
                      tuple(row.audiences), row.purpose, _aware(row.created_at), _aware(row.expires_at),
                      row.granted_by, aware(row.revoked_at))


class DelegationRepository:
    """Consent and guardianship delegations."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, delegation_id: str) -> Delegation | None:
        table = orm.delegations
        row = self.session.execute(select(table).where(table.c.delegation_id == delegation_id)).first()
        return _delegation(row) if row else None

    def by_idempotency_key(self, granted_by: str, key: str) -> Delegation | None:
        table = orm.delegations
        row = self.session.execute(select(table).where(table.c.granted_by == granted_by,
                                                       table.c.idempotency_key == key)).first()
        return _delegation(row) if row else None

    def live_for_principal(self, principal_subject: str, now: datetime, lock: bool = False) -> list[Delegation]:
        """``lock`` holds a share lock on the rows until the transaction ends: a token exchange takes it so a
        concurrent revocation waits for the exchanged token to be recorded (and then deny-lists it) instead of
        missing it."""
        table = orm.delegations
        query = select(table).where(table.c.principal_subject == principal_subject, table.c.revoked_at.is_(None),
                                    table.c.expires_at > now)
        rows = self.session.execute(query.with_for_update(read=True) if lock else query)
        return [_delegation(row) for row in rows]

    def involving(self, subject: str, include_inactive: bool, now: datetime, after: str,
                  limit: int) -> list[Delegation]:
        """Delegations granted by ``subject`` or to ``subject`` as a citizen delegate, by id."""
        table = orm.delegations
        query = select(table).where(or_(table.c.principal_subject == subject,
                                        and_(table.c.delegate_kind == "citizen", table.c.delegate_id == subject)),
                                    table.c.delegation_id > after)
        if not include_inactive:
            query = query.where(table.c.revoked_at.is_(None), table.c.expires_at > now)
        rows = self.session.execute(query.order_by(table.c.delegation_id).limit(limit))
        return [_delegation(row) for row in rows]

    def add(self, delegation: Delegation, idempotency_key: str | None) -> None:
        self.session.execute(insert(orm.delegations).values(
            delegation_id=delegation.delegation_id, principal_subject=delegation.principal_subject,
            delegate_kind=delegation.delegate_kind, delegate_id=delegation.delegate_id,
            relation=delegation.relation, audiences=list(delegation.audiences), purpose=delegation.purpose,
            created_at=delegation.created_at, expires_at=delegation.expires_at, revoked_at=None,
            granted_by=delegation.granted_by, idempotency_key=idempotency_key))

    def revoke(self, delegation_id: str, now: datetime) -> list[tuple[str, datetime]]:
        """End the delegation; returns (jti, expiry) of the tokens exchanged under it that a verifier may still
        accept."""
        table = orm.delegations
        self.session.execute(update(table).where(table.c.delegation_id == delegation_id,
                                                 table.c.revoked_at.is_(None)).values(revoked_at=now))
        tokens = orm.delegation_tokens
        rows = self.session.execute(select(tokens.c.jti, tokens.c.expires_at).where(
            tokens.c.delegation_id == delegation_id, tokens.c.expires_at > still_accepted_since(now))).all()
        return [(row.jti, _aware(row.expires_at)) for row in rows]

    def record_token(self, delegation_id: str, jti: str, expires_at: datetime) -> None:
        """Remember an access token exchanged under the delegation, so revoking the delegation reaches it."""
        self.session.execute(insert(orm.delegation_tokens).values(jti=jti, delegation_id=delegation_id,
                                                                  expires_at=expires_at))

    def purge_tokens(self, before: datetime) -> None:
        self.session.execute(delete(orm.delegation_tokens).where(orm.delegation_tokens.c.expires_at < before))

    def extend(self, delegation_id: str, expires_at: datetime) -> None:
        table = orm.delegations
        self.session.execute(update(table).where(table.c.delegation_id == delegation_id)
                             .values(expires_at=expires_at))

    def granted_by(self, granted_by: str, delegate_id: str, now: datetime) -> list[Delegation]:
        """Live delegations a given grantor (e.g. an upstream provider) gave to one delegate."""
        table = orm.delegations
        rows = self.session.execute(select(table).where(table.c.granted_by == granted_by,
                                                        table.c.delegate_id == delegate_id,
                                                        table.c.revoked_at.is_(None), table.c.expires_at > now))
        return [_delegation(row) for row in rows]


@dataclass(frozen=True)
class AuditEvent:
    """One audit row."""

    event_id: int
    occurred_at: datetime
    event_type: str
    actor: str
    subject: str
    outcome: str
    detail: dict[str, Any]
    request_id: str


class AuditRepository:
    """The append-only audit trail."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, *, occurred_at: datetime, event_type: str, actor: str, subject: str, outcome: str,
            detail: dict[str, Any], request_id: str) -> None:
        self.session.execute(insert(orm.audit_events).values(
            occurred_at=occurred_at, event_type=event_type, actor=actor[:160], subject=subject[:160],
            outcome=outcome, detail=detail, request_id=request_id[:64]))

    def page(self, *, event_type: str, subject: str, before_id: int | None, limit: int) -> list[AuditEvent]:
        table = orm.audit_events
        query = select(table)
        if event_type:
            query = query.where(table.c.event_type == event_type)
        if subject:
            query = query.where(or_(table.c.subject == subject, table.c.actor == subject))
        if before_id is not None:
            query = query.where(table.c.event_id < before_id)
        rows = self.session.execute(query.order_by(table.c.event_id.desc()).limit(limit))
        return [AuditEvent(row.event_id, _aware(row.occurred_at), row.event_type, row.actor, row.subject,
                           row.outcome, dict(row.detail), row.request_id) for row in rows]

    def count(self, event_type: str) -> int:
        table = orm.audit_events
        return int(self.session.execute(select(func.count()).where(table.c.event_type == event_type)).scalar_one())


