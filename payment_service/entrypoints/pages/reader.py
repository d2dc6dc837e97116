"""What the public payment page shows for a payment reference. The reference is the payer's capability (printed
on the payment notice and carried in the transfer note), so the view leaves out what a stranger holding it must not
learn — the payer's full national ID — and exposes nothing an id-guessing visitor could use."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from xml.etree import ElementTree

from payment_service.domain import reference as references
from payment_service.domain import vietqr
from payment_service.domain.model import Payment, PaymentStatus
from payment_service.domain.receipt import XML_NAMESPACE
from payment_service.entrypoints.pages.banks import bank_name
from payment_service.service_layer.qr_images import payload_due
from payment_service.service_layer.services import PaymentServices
from servicekit.errors import DomainError, NotFound
from servicekit.web.formatting import masked_id

log = logging.getLogger("dvc.payments.pages")

OPEN_STATUSES = frozenset({PaymentStatus.CREATED, PaymentStatus.PENDING})
# A payer's own bank first, then e-wallets, then gateways (cards); unknown kinds after them.
CHANNEL_ORDER = ("bank", "wallet", "gateway")


@dataclass(frozen=True)
class FeeLineView:
    kind: str
    name: str
    amount: int


@dataclass(frozen=True)
class TransferView:
    """Everything a payer types into a bank app when they cannot scan the QR code."""

    bank_bin: str
    bank_name: str
    account: str
    account_name: str
    amount: int
    note: str


@dataclass(frozen=True)
class ReceiptView:
    """The e-receipt (biên lai điện tử) of a paid payment, as signed by the platform."""

    number: str
    agency_name: str
    payer_name: str
    payer_id: str               # masked, as on the page
    issued_at: datetime | None
    paid_at: datetime | None
    amount: int
    bank_transaction_id: str
    connector: str
    signature_algorithm: str
    key_id: str


@dataclass(frozen=True)
class PayerPage:
    reference: str
    status: str
    agency_code: str
    agency_name: str
    dossier_code: str
    procedure_code: str
    description: str
    payer_name: str
    payer_id: str               # masked: only the last four digits
    fee_lines: list[FeeLineView]
    total: int
    paid_amount: int
    created_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    transfer: TransferView | None
    channels: list[str] = field(default_factory=list)
    receipt: ReceiptView | None = None

    @property
    def open(self) -> bool:
        return self.status in {status.value for status in OPEN_STATUSES}

    @property
    def remaining(self) -> int:
        """What is still owed; only meaningful while the payment is open."""
        return max(self.total - self.paid_amount, 0)


def _moment(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) and text else None


def _signed_parts(document: bytes) -> tuple[dict[str, object], dict[str, str]]:
    """The signed receipt fields and the signature's attributes, from the stored receipt: the signed XML the
    wallet receives (its SignedContent is the canonical JSON that was signed), or a JSON envelope."""
    if document.lstrip().startswith(b"<"):
        root = ElementTree.fromstring(document)  # noqa: S314 - written by this service, never by a visitor
        namespace = {"r": XML_NAMESPACE}
        signed = root.find("r:SignedContent", namespace)
        signature = root.find("r:Signature", namespace)
        fields = json.loads(base64.b64decode(signed.text or "")) if signed is not None else {}
        return fields, dict(signature.attrib) if signature is not None else {}
    envelope = json.loads(document)
    return envelope.get("receipt", {}), envelope.get("signature", {})


def _party(receipt: dict[str, object], key: str) -> dict[str, object]:
    party = receipt.get(key)
    return party if isinstance(party, dict) else {}


def _receipt(document: bytes | None, reference: str) -> ReceiptView | None:
    """The receipt as signed: who collected and who paid are the receipt's own words, not today's agency name.
    A stored receipt that cannot be read shows as one being prepared rather than failing the payer's page."""
    if not document:
        return None
    try:
        receipt, signature = _signed_parts(document)
        agency, payer = _party(receipt, "agency"), _party(receipt, "payer")
        return ReceiptView(number=str(receipt.get("number", "")), agency_name=str(agency.get("name", "")),
                           payer_name=str(payer.get("name", "")),
                           payer_id=masked_id(str(payer.get("national_id", ""))),
                           issued_at=_moment(receipt.get("issued_at")), paid_at=_moment(receipt.get("paid_at")),
                           amount=int(str(receipt.get("amount", 0))),
                           bank_transaction_id=str(receipt.get("bank_transaction_id", "")),
                           connector=str(receipt.get("connector", "")), signature_algorithm=signature.get("alg", ""),
                           key_id=signature.get("kid", ""))
    except (ElementTree.ParseError, ValueError, TypeError, AttributeError) as error:
        log.error("stored receipt cannot be read", extra={"reference": reference, "error": str(error)})
        return None


def _transfer(payment: Payment, account_name: str) -> TransferView:
    """The transfer the page's VietQR code asks for (after a short transfer, only what is still owed), spelled out
    from the code itself so the two never differ."""
    due = payment.amount - payment.paid_amount
    try:
        code = vietqr.parse_payload(payload_due(payment))
        bank_bin, account, amount, note = code.bank_bin, code.account, code.amount or due, code.purpose
    except DomainError:
        bank_bin, account, amount, note = (payment.beneficiary.bank_bin, payment.beneficiary.account,
                                           due, payment.reference)
    return TransferView(bank_bin=bank_bin, bank_name=bank_name(bank_bin), account=account,
                        account_name=account_name, amount=amount, note=note or payment.reference)


class PayerPages:
    """Reads payments by reference for the payer's page (the same public access the QR image route has)."""

    def __init__(self, services: PaymentServices) -> None:
        self.services = services

    def _payment(self, reference: str) -> tuple[Payment, str, bytes | None]:
        wanted = reference.strip().upper()
        # A malformed reference is answered without touching the database; its check character catches typos.
        if not references.is_valid(wanted):
            raise NotFound("no such payment", reason="PAYMENT_NOT_FOUND")
        with self.services.uow_factory() as uow:
            payment = uow.payments.get_by_reference(wanted)
            if payment is None:
                raise NotFound("no such payment", reason="PAYMENT_NOT_FOUND")
            agency = uow.agencies.get(payment.agency_code, with_secrets=False)
            receipt = uow.receipts.get(payment.id) if payment.paid_at is not None else None
        return payment, agency.name if agency is not None else payment.agency_code, receipt

    def page(self, reference: str) -> PayerPage:
        payment, agency_name, receipt = self._payment(reference)
        is_open = payment.status in OPEN_STATUSES
        channels = sorted((channel for channel, _ in self.services.channel_links(payment) if channel != "vietqr"),
                          key=lambda kind: CHANNEL_ORDER.index(kind) if kind in CHANNEL_ORDER else len(CHANNEL_ORDER))
        return PayerPage(
            reference=payment.reference, status=payment.status.value, agency_code=payment.agency_code,
            agency_name=agency_name, dossier_code=payment.dossier_code, procedure_code=payment.procedure_code,
            description=payment.description, payer_name=payment.payer.name,
            payer_id=masked_id(payment.payer.national_id),
            fee_lines=[FeeLineView(line.kind.value, line.name, line.amount) for line in payment.fee_lines],
            total=payment.amount, paid_amount=payment.paid_amount, created_at=payment.created_at,
            expires_at=payment.expires_at, paid_at=payment.paid_at,
            transfer=_transfer(payment, payment.beneficiary.name or agency_name) if is_open else None,
            channels=channels if is_open else [], receipt=_receipt(receipt, payment.reference))

    def status(self, reference: str) -> str:
        payment, _, _ = self._payment(reference)
        return payment.status.value

    def start_channel(self, reference: str, channel: str) -> str:
        """Where to send the payer to pay through ``channel`` (the payment service's own routing)."""
        return self.services.start_channel(reference, channel)
