"""Commands the payment service accepts, their field-level validation and the canonical idempotency hash."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from payment_service.domain.model import Agency, ExpiryPolicy, FeeKind
from servicekit.errors import ViolationCollector

AMOUNT_MAX = 10**13 - 1  # 13 digits of đồng: the VietQR amount field's limit
MAX_FEE_LINES = 50
_NATIONAL_ID = re.compile(r"[0-9]{12}")
_BIN = re.compile(r"[0-9]{6}")
_ACCOUNT = re.compile(r"[A-Za-z0-9]{1,19}")
# Dossier, procedure and service codes are printed on forms and typed by staff: printable ASCII, no spaces.
_CODE = re.compile(r"[A-Za-z0-9._:/-]{1,64}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")
_FEE_KINDS = {kind.value: kind for kind in FeeKind}
# Names and descriptions go into the e-receipt, an XML 1.0 document: a character outside XML's Char production
# (control characters, lone surrogates, U+FFFE, U+FFFF) would make every receipt of the payment unreadable. Tab and
# line breaks, which XML allows, have no place in them either.
_NOT_XML_TEXT = re.compile(r"[^\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class FeeLineInput:
    """A fee line as the caller sent it (kind still a string)."""

    kind: str
    code: str
    name: str
    amount: int


@dataclass(frozen=True)
class CreatePayment:
    """Start collecting a fee payment for one dossier."""

    agency_code: str
    idempotency_key: str
    dossier_code: str
    procedure_code: str
    service_code: str
    payer_name: str
    payer_national_id: str
    fee_lines: tuple[FeeLineInput, ...]
    total_amount: int
    beneficiary_bin: str
    beneficiary_account: str
    expires_at: datetime | None = None
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def canonical_hash(self) -> str:
        """SHA-256 of every field that defines the payment (not the idempotency key), in a stable form, so a
        retried request matches and a different body under the same key does not."""
        body = {
            "dossier_code": self.dossier_code, "procedure_code": self.procedure_code,
            "service_code": self.service_code, "payer_name": self.payer_name,
            "payer_national_id": self.payer_national_id,
            "fee_lines": [[line.kind, line.code, line.name, line.amount] for line in self.fee_lines],
            "total_amount": self.total_amount, "beneficiary": [self.beneficiary_bin, self.beneficiary_account],
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "description": self.description,
        }
        encoded = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()
        return hashlib.sha256(encoded).hexdigest()


def _check_code(collector: ViolationCollector, path: str, value: str, *, required: bool = True) -> None:
    if not value:
        if required:
            collector.add(path, "is required")
        return
    if not _CODE.fullmatch(value):
        collector.add(path, "must be 1-64 characters of letters, digits and . _ : / -")


def _check_amount(collector: ViolationCollector, path: str, amount: int) -> None:
    if amount <= 0:
        collector.add(path, f"must be a positive whole number of đồng, got {amount}")
    elif amount > AMOUNT_MAX:
        collector.add(path, f"must have at most 13 digits (≤ {AMOUNT_MAX} đồng), got {amount}")


def check_text(collector: ViolationCollector, path: str, value: str, limit: int, *, required: bool) -> None:
    if not value.strip():
        if required:
            collector.add(path, "is required")
        return
    if len(value) > limit:
        collector.add(path, f"must be at most {limit} characters")
    unsafe = xml_unsafe_character(value)
    if unsafe is not None:
        collector.add(path, f"must not contain control characters or characters XML cannot carry "
                            f"(found U+{ord(unsafe):04X})")


def xml_unsafe_character(value: str) -> str | None:
    """The first character of ``value`` that a receipt's XML cannot carry, or None."""
    found = _NOT_XML_TEXT.search(value)
    return found.group() if found else None


def validate_create(command: CreatePayment, agency: Agency, now: datetime, policy: ExpiryPolicy) -> datetime:
    """Every problem of the request at once as field violations; returns the effective expiry."""
    collector = ViolationCollector()
    if not _IDEMPOTENCY_KEY.fullmatch(command.idempotency_key):
        collector.add("idempotency_key", "is required: 1-128 printable ASCII characters, the same on every retry")
    _check_code(collector, "dossier_code", command.dossier_code)
    _check_code(collector, "procedure_code", command.procedure_code)
    _check_code(collector, "service_code", command.service_code, required=False)
    check_text(collector, "payer.name", command.payer_name, 200, required=True)
    if not _NATIONAL_ID.fullmatch(command.payer_national_id):
        collector.add("payer.national_id", "must be the 12-digit national ID number (số định danh cá nhân)")
    check_text(collector, "description", command.description, 200, required=False)
    if not command.fee_lines:
        collector.add("fee_lines", "at least one fee line is required")
    elif len(command.fee_lines) > MAX_FEE_LINES:
        collector.add("fee_lines", f"at most {MAX_FEE_LINES} fee lines")
    for index, line in enumerate(command.fee_lines):
        path = f"fee_lines[{index}]"
        if line.kind not in _FEE_KINDS:
            collector.add(f"{path}.kind", f"must be one of {', '.join(_FEE_KINDS)} (phí, lệ phí, other)")
        _check_code(collector, f"{path}.code", line.code)
        check_text(collector, f"{path}.name", line.name, 200, required=True)
        _check_amount(collector, f"{path}.amount", line.amount)
    _check_amount(collector, "total_amount", command.total_amount)
    line_sum = sum(line.amount for line in command.fee_lines)
    if command.fee_lines and command.total_amount != line_sum:
        collector.add("total_amount", f"must equal the sum of the fee lines ({line_sum} đồng), "
                                      f"got {command.total_amount}")
    if not _BIN.fullmatch(command.beneficiary_bin):
        collector.add("beneficiary.bank_bin", "must be the bank's 6-digit BIN")
    if not _ACCOUNT.fullmatch(command.beneficiary_account):
        collector.add("beneficiary.account", "must be 1-19 letters or digits")
    elif _BIN.fullmatch(command.beneficiary_bin) and agency.owns_account(command.beneficiary_bin,
                                                                         command.beneficiary_account) is None:
        collector.add("beneficiary.account", f"is not a beneficiary account registered for agency {agency.code}")
    expires_at = command.expires_at or now + policy.default
    if expires_at.tzinfo is None:
        collector.add("expires_at", "must carry a time zone")
    elif expires_at < now + policy.minimum:
        collector.add("expires_at", f"must be at least {int(policy.minimum.total_seconds())} s in the future")
    elif expires_at > now + policy.maximum:
        collector.add("expires_at", f"must be at most {policy.maximum.days} days in the future")
    collector.raise_if_any("the payment request has invalid fields")
    return expires_at
