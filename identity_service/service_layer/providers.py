"""The registry of upstream identity providers: admin registration and the providers-file sync."""

from __future__ import annotations

from dataclasses import dataclass, replace

from identity_service.domain import providers as provider_rules
from identity_service.domain import scopes as scope_rules
from identity_service.domain.providers import Provider
from identity_service.service_layer.core import (
    HandlerCore,
    decode_cursor,
    encode_cursor,
    page_size,
)
from servicekit.auth import Principal


@dataclass(frozen=True)
class ProviderView:
    """A provider as listed: without its secret, saying whether one is stored."""

    provider: Provider
    has_client_secret: bool


class ProviderHandlers(HandlerCore):
    """RegisterIdentityProvider, ListIdentityProviders and the start-up file sync."""

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
