"""Worked examples and sandbox facts for the reference, computed from the code that runs (never typed by hand):
an agency callback signed by the platform's own signer, and the test data the sandboxes and dev seeds publish."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

EXAMPLE_SECRET = "example-callback-secret-do-not-use"
EXAMPLE_NEXT_SECRET = "example-rotated-secret-do-not-use"
EXAMPLE_TIMESTAMP = 1772420400  # 2026-03-02 03:00:00 UTC, a fixed moment so the example never changes


@dataclass(frozen=True)
class SignatureExample:
    secret: str
    next_secret: str
    timestamp: int
    body: str
    signed_string_head: str     # the start of "<t>.<body>", as printed
    mac_hex: str
    header: str
    rotation_header: str


def _sample_callback_body() -> str:
    """A payment.succeeded callback exactly as the platform's callback builder writes it."""
    from payment_service.domain.model import (
        BeneficiaryAccount,
        EventSource,
        EventType,
        FeeKind,
        FeeLine,
        Payer,
        Payment,
        PaymentEvent,
        PaymentStatus,
    )
    from payment_service.service_layer.services import callback_body

    created = datetime.fromtimestamp(EXAMPLE_TIMESTAMP, UTC) - timedelta(minutes=12)
    paid = datetime.fromtimestamp(EXAMPLE_TIMESTAMP, UTC) - timedelta(seconds=2)
    payment = Payment(
        id="3b8f7c0e9a1d4f52b6e0c7a9d2f18e44", agency_code="HCM", idempotency_key="hs-2026-012345-fee",
        request_hash="", reference="DVC7K2M9QX4TB1HZ", dossier_code="000.00.01.H29-260301-0042",
        procedure_code="1.001612", service_code="", payer=Payer("Nguyễn Văn An", "001085000101"),
        fee_lines=[FeeLine(FeeKind.LE_PHI, "LP01", "Lệ phí cấp bản sao", 185_000)], amount=185_000,
        beneficiary=BeneficiaryAccount("970405", "7111000000001", "KBNN TP Ho Chi Minh"), description="",
        expires_at=created + timedelta(hours=24), created_at=created, updated_at=paid,
        status=PaymentStatus.SUCCEEDED, connector_code="vietcombank", provider_reference="FT26061093021877",
        paid_amount=185_000, paid_at=paid, last_sequence=3)
    event = PaymentEvent("9c1e5f2a7b3d4e6f8a0b1c2d3e4f5a6b", payment.id, "HCM", 3, EventType.SUCCEEDED,
                         PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, EventSource.CALLBACK, paid,
                         {"connector": "vietcombank", "provider_reference": "FT26061093021877", "amount": 185_000})
    return callback_body(payment, event)


def signature_example() -> SignatureExample:
    """The signature of the sample callback, computed twice — once by hand with hmac, once by the platform's
    signer — and refused if the two ever differ, so the page can only show what the platform really sends."""
    from payment_service import callback_signature

    body = _sample_callback_body()
    signed = f"{EXAMPLE_TIMESTAMP}.".encode() + body.encode()
    mac = hmac.new(EXAMPLE_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    header = callback_signature.sign(body.encode(), [EXAMPLE_SECRET], timestamp=EXAMPLE_TIMESTAMP)
    if header != f"t={EXAMPLE_TIMESTAMP},v1={mac}":
        raise AssertionError(f"the documented signature scheme no longer matches the signer: {header}")
    callback_signature.verify(body.encode(), header, [EXAMPLE_SECRET], now=EXAMPLE_TIMESTAMP)
    rotation = callback_signature.sign(body.encode(), [EXAMPLE_NEXT_SECRET, EXAMPLE_SECRET],
                                       timestamp=EXAMPLE_TIMESTAMP)
    return SignatureExample(EXAMPLE_SECRET, EXAMPLE_NEXT_SECRET, EXAMPLE_TIMESTAMP, body,
                            signed.decode()[:60] + "…", mac, header, rotation)


def sandbox_facts() -> dict[str, Any]:
    """Test citizens and officials, machine clients, agencies, issuers, sandbox ports and magic amounts."""
    from identity_service.devseed import DEV_CLIENTS
    from identity_service.sandbox.accounts import AGENCY_ACCOUNTS, VNEID_ACCOUNTS
    from payment_service.bootstrap import DEMO_AGENCIES
    from payment_service.sandbox import catalog
    from payment_service.sandbox.common import MAGIC
    from wallet_service.bootstrap import dev_issuer_keys

    return {
        "citizens": [{"national_id": account.national_id, "name": account.name, "level": account.level,
                      "note": account.note} for account in VNEID_ACCOUNTS],
        "officials": [{"username": account.username, "name": account.name, "agency": account.agency,
                       "roles": ", ".join(account.roles), "note": account.note} for account in AGENCY_ACCOUNTS],
        "clients": [{"client_id": client.client_id, "secret": client.client_secret, "agency": client.agency,
                     "scopes": " ".join(client.scopes), "name": client.display_name} for client in DEV_CLIENTS],
        "agencies": [{"code": code, "name": name,
                      "accounts": [f"{bank_bin} / {account} ({holder})" for bank_bin, account, holder in accounts]}
                     for code, name, accounts in DEMO_AGENCIES],
        "issuers": [{"agency": key.agency_code, "kind": key.agency_kind, "algorithm": key.algorithm.value,
                     "key_id": key.key_id} for key in dev_issuer_keys().values()],
        "sandboxes": [{"code": code, "port": port} for code, port in catalog.SANDBOX_PORTS.items()],
        "magic": [{"ending": f"{magic.code:02d}", "name": magic.name, "description": magic.description}
                  for magic in sorted(MAGIC.values(), key=lambda item: item.code)],
    }
