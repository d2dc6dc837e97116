"""Development seed: the demo machine clients with fixed, published secrets (never in production)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from identity_service.adapters.crypto import hash_secret
from identity_service.domain.clients import AUTH_CLIENT_SECRET, Client
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork


@dataclass(frozen=True)
class DevClient:
    """A demo client; its secret is in the source code, so it exists only in development."""

    client_id: str
    display_name: str
    agency: str
    scopes: tuple[str, ...]
    client_secret: str


DEV_CLIENTS = (
    DevClient("hcm-dossier-system", "Ho Chi Minh City one-stop dossier system (provincial system)", "HCM",
              ("payments.create", "payments.read"), "dev-secret-hcm-dossier-system-0001"),
    # Issuing agencies must be ones whose signing keys the wallet seeds (wallet_service.bootstrap.DEV_ISSUERS).
    DevClient("stp-hcm-civil-registry", "Ho Chi Minh City Department of Justice civil registry (issuing agency)",
              "STP-HCM", ("wallet.issue",), "dev-secret-stp-hcm-civil-registry-0002"),
    DevClient("hn-dossier-receiver", "Ha Noi dossier system (receiving agency)", "HN",
              ("wallet.redeem",), "dev-secret-hn-dossier-receiver-0003"),
    DevClient("dvc-payment-service", "Payment service, issuing e-receipts into wallets", "DVC-PAYMENTS",
              ("wallet.issue",), "dev-secret-dvc-payment-service-0004"),
    DevClient("dvc-dev-admin", "Development administrator (scripts, demos)", "DVC",
              ("identity.admin", "payments.admin", "wallet.admin"), "dev-secret-dvc-dev-admin-0005"),
)


class SeedingRefused(RuntimeError):
    """Demo clients with published secrets must never exist in production."""


def seed_dev_clients(uow: IdentityUnitOfWork, environment: str) -> list[str]:
    """Register every missing demo client; returns the ids added. Existing clients are left alone."""
    if environment != "development":
        raise SeedingRefused(f"refusing to seed demo clients with published secrets in {environment!r}")
    now = datetime.now(UTC)
    added = []
    with uow:
        for dev in DEV_CLIENTS:
            if uow.clients.get(dev.client_id) is not None:
                continue
            uow.clients.add(Client(dev.client_id, dev.display_name, dev.agency, dev.scopes, AUTH_CLIENT_SECRET, None,
                                   hash_secret(dev.client_secret), None, None, now, now))
            uow.audit.add(occurred_at=now, event_type="client.registered", actor="dev-seed", subject=dev.client_id,
                          outcome="success", detail={"agency": dev.agency, "scopes": list(dev.scopes),
                                                     "auth_method": AUTH_CLIENT_SECRET}, request_id="")
            added.append(dev.client_id)
        uow.commit()
    return added
