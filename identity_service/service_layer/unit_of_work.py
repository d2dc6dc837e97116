"""Identity's unit of work: one transaction with every repository on the same session."""

from __future__ import annotations

from typing import Self

from identity_service.adapters import repositories as repos
from servicekit.db import SqlUnitOfWork


class IdentityUnitOfWork(SqlUnitOfWork):
    """``with uow: ...; uow.commit()``; the repositories share the transaction."""

    keys: repos.SigningKeyRepository
    providers: repos.ProviderRepository
    clients: repos.ClientRepository
    logins: repos.LoginSessionRepository
    accounts: repos.AccountRepository
    refresh_tokens: repos.RefreshTokenRepository
    revocations: repos.RevocationRepository
    assertions: repos.AssertionRepository
    delegations: repos.DelegationRepository
    audit: repos.AuditRepository

    def __enter__(self) -> Self:
        super().__enter__()
        session = self.session
        self.keys = repos.SigningKeyRepository(session)
        self.providers = repos.ProviderRepository(session)
        self.clients = repos.ClientRepository(session)
        self.logins = repos.LoginSessionRepository(session)
        self.accounts = repos.AccountRepository(session)
        self.refresh_tokens = repos.RefreshTokenRepository(session)
        self.revocations = repos.RevocationRepository(session)
        self.assertions = repos.AssertionRepository(session)
        self.delegations = repos.DelegationRepository(session)
        self.audit = repos.AuditRepository(session)
        return self
