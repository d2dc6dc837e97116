"""Payments, agencies and the payment state machine; every transition yields an immutable event."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from servicekit.errors import FailedPrecondition, InvalidArgument


class PaymentStatus(enum.Enum):
    """Where a payment is in its life."""

    CREATED = "created"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


S = PaymentStatus
# CREATED may jump straight to an outcome: a VietQR transfer can land before the payer opens any channel page.
ALLOWED_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.CREATED: frozenset({S.PENDING, S.SUCCEEDED, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.PENDING: frozenset({S.SUCCEEDED, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.SUCCEEDED: frozenset({S.REFUNDED, S.PARTIALLY_REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.REFUNDED, S.PARTIALLY_REFUNDED}),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}
OPEN_STATUSES = frozenset({S.CREATED, S.PENDING})
PAID_STATUSES = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED, S.REFUNDED})
CLOSED_UNPAID = frozenset({S.FAILED, S.EXPIRED, S.CANCELLED})

FLAG_REFUND_REQUIRED = "refund_required"   # money arrived for a payment that was already closed
FLAG_REFUND_FAILED = "refund_failed"       # a counterpart reported a refund it had accepted as failed
FLAG_OVERPAID = "overpaid"                 # the payer transferred more than the total


class EventSource(enum.Enum):
    """Who caused a transition."""

    API = "api"
    CALLBACK = "callback"
    STATUS_QUERY = "status_query"
    RECONCILIATION = "reconciliation"
    EXPIRY = "expiry"


class FeeKind(enum.Enum):
    """Kind of a fee line: phí (service fee), lệ phí (state charge) or anything else."""

    PHI = "phi"
    LE_PHI = "le_phi"
    OTHER = "other"


class EventType(enum.Enum):
    """What happened to a payment; all but CREATED are sent to the agency."""

    CREATED = "payment.created"
    PENDING = "payment.pending"
    PARTIALLY_PAID = "payment.partially_paid"
    SUCCEEDED = "payment.succeeded"
    FAILED = "payment.failed"
    EXPIRED = "payment.expired"
    CANCELLED = "payment.cancelled"
    LATE_SUCCESS = "payment.late_success"
    REFUNDED = "payment.refunded"
    PARTIALLY_REFUNDED = "payment.partially_refunded"
    REFUND_FAILED = "payment.refund_failed"


_EVENT_FOR_STATUS = {
    S.PENDING: EventType.PENDING, S.SUCCEEDED: EventType.SUCCEEDED, S.FAILED: EventType.FAILED,
    S.EXPIRED: EventType.EXPIRED, S.CANCELLED: EventType.CANCELLED, S.REFUNDED: EventType.REFUNDED,
    S.PARTIALLY_REFUNDED: EventType.PARTIALLY_REFUNDED,
}


@dataclass(frozen=True)
class FeeLine:
    """One fee of a payment; amounts are integer đồng."""

    kind: FeeKind
    code: str
    name: str
    amount: int


@dataclass(frozen=True)
class Payer:
    """Who pays: name and 12-digit national ID number (the wallet receiving the e-receipt)."""

    name: str
    national_id: str


@dataclass(frozen=True)
class BeneficiaryAccount:
    """An account an agency collects into (e.g. a State Treasury collection account)."""

    bank_bin: str
    account: str
    name: str = ""


@dataclass(frozen=True)
class ChannelChoice:
    """A connector an agency allows, with its priority (lower first) among connectors of the same channel."""

    connector_code: str
    priority: int


@dataclass(frozen=True)
class CallbackSecret:
    """A callback signing secret; during rotation the previous one stays active until ``expires_at``."""

    secret_id: str
    secret: str
    created_at: datetime
    expires_at: datetime | None = None

    def active_at(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


@dataclass
class Agency:
    """A tenant: a provincial system, ministry or other biller."""

    code: str
    name: str
    callback_url: str
    accounts: list[BeneficiaryAccount]
    channels: list[ChannelChoice]
    secrets: list[CallbackSecret]
    created_at: datetime
    updated_at: datetime
    active: bool = True

    def owns_account(self, bank_bin: str, account: str) -> BeneficiaryAccount | None:
        for candidate in self.accounts:
            if candidate.bank_bin == bank_bin and candidate.account == account:
                return candidate
        return None

    def active_secrets(self, now: datetime) -> list[CallbackSecret]:
        """Newest first: integrators verifying one signature should try the first ``v1`` entry first."""
        return sorted((s for s in self.secrets if s.active_at(now)), key=lambda s: s.created_at, reverse=True)

    def allowed_connectors(self) -> list[str]:
        return [choice.connector_code for choice in sorted(self.channels, key=lambda c: c.priority)]


@dataclass(frozen=True)
class PaymentEvent:
    """One immutable transition of one payment, numbered per payment."""

    event_id: str
    payment_id: str
    agency_code: str
    sequence: int
    type: EventType
    from_status: PaymentStatus | None
    to_status: PaymentStatus
    source: EventSource
    occurred_at: datetime
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def notifies_agency(self) -> bool:
        return self.type is not EventType.CREATED


class CreditResult(enum.Enum):
    """How a payment took a success or credit notice."""

    APPLIED = "applied"
    PARTIAL = "partial"
    DUPLICATE = "duplicate"
    LATE = "late"
    AMOUNT_MISMATCH = "amount_mismatch"


@dataclass
class Payment:
    """A fee payment for one dossier. Methods enforce the state machine and append events to ``new_events``."""

    id: str
    agency_code: str
    idempotency_key: str
    request_hash: str
    reference: str
    dossier_code: str
    procedure_code: str
    service_code: str
    payer: Payer
    fee_lines: list[FeeLine]
    amount: int
    beneficiary: BeneficiaryAccount
    description: str
    expires_at: datetime
    created_at: datetime
    updated_at: datetime
    status: PaymentStatus = PaymentStatus.CREATED
    qr_payload: str = ""
    connector_code: str = ""
    provider_reference: str = ""     # the counterpart's transaction id, once it paid (refunds quote it)
    # What the connector's create returned (Ngân Lượng's checkout token): status queries need it. Kept apart from
    # provider_reference, which agencies see and refunds quote, because a checkout token is neither.
    checkout_reference: str = ""
    paid_amount: int = 0
    refunded_amount: int = 0
    paid_at: datetime | None = None
    flags: set[str] = field(default_factory=set)
    # Every counterpart transaction counted in paid_amount, as "connector/transaction id" ("connector/" when the
    # counterpart named none), so a re-reported transaction is recognised on every path, never counted twice.
    credited: list[str] = field(default_factory=list)
    last_sequence: int = 0
    new_events: list[PaymentEvent] = field(default_factory=list, repr=False)

    @classmethod
    def create(cls, **fields: Any) -> Payment:
        payment = cls(**fields)
        payment._record(EventType.CREATED, None, PaymentStatus.CREATED, EventSource.API, payment.created_at,
                        {"amount": payment.amount, "reference": payment.reference})
        return payment

    # -- transitions ------------------------------------------------------------------------------------

    def _record(self, event_type: EventType, before: PaymentStatus | None, after: PaymentStatus, source: EventSource,
                at: datetime, data: dict[str, Any]) -> PaymentEvent:
        self.last_sequence += 1
        event = PaymentEvent(uuid.uuid4().hex, self.id, self.agency_code, self.last_sequence, event_type, before,
                             after, source, at, data)
        self.new_events.append(event)
        self.updated_at = at
        return event

    def _move(self, target: PaymentStatus, source: EventSource, at: datetime, data: dict[str, Any] | None = None,
              ) -> PaymentEvent:
        if target not in ALLOWED_TRANSITIONS[self.status]:
            raise FailedPrecondition(
                f"payment {self.reference} is {self.status.value}; it cannot become {target.value}",
                reason="ILLEGAL_TRANSITION", metadata={"from": self.status.value, "to": target.value})
        before = self.status
        self.status = target
        return self._record(_EVENT_FOR_STATUS[target], before, target, source, at, dict(data or {}))

    def mark_pending(self, connector_code: str, source: EventSource, at: datetime, checkout_reference: str = "",
                     ) -> None:
        """The payer started paying through ``connector_code`` (which answered ``checkout_reference``); a repeat
        on PENDING only switches connector."""
        if self.status is not PaymentStatus.PENDING:
            self._move(PaymentStatus.PENDING, source, at, {"connector": connector_code})
        self.connector_code = connector_code
        # Replaced even by '': a previous connector's token means nothing to this one.
        self.checkout_reference = checkout_reference

    def receives_into(self, account: str) -> bool:
        """Whether a transfer credited to ``account`` ("bin/number"; '' when the bank does not say) reached this
        payment's beneficiary account: a note naming this payment on a transfer to another account is not it."""
        return not account or account == f"{self.beneficiary.bank_bin}/{self.beneficiary.account}"

    def record_success(self, amount: int, connector_code: str, provider_reference: str, source: EventSource,
                       at: datetime) -> CreditResult:
        """A counterpart says the whole payment succeeded: the amount must match exactly. The same transaction
        reported again is a duplicate; another transaction on a payment already paid is money to give back."""
        if self._already_counted(connector_code, provider_reference):
            return CreditResult.DUPLICATE
        if amount != self.amount:
            return CreditResult.AMOUNT_MISMATCH
        if self.status in PAID_STATUSES:
            return self._late(amount, connector_code, provider_reference, source, at)
        return self._settle(amount, connector_code, provider_reference, source, at)

    def record_credit(self, amount: int, connector_code: str, provider_reference: str, source: EventSource,
                      at: datetime) -> CreditResult:
        """A bank credited the beneficiary account for this payment (VietQR transfer): partial payments add up,
        over-payment succeeds but is flagged."""
        if amount <= 0:
            return CreditResult.AMOUNT_MISMATCH
        if self._already_counted(connector_code, provider_reference):
            return CreditResult.DUPLICATE
        if self.status in PAID_STATUSES or self.status in CLOSED_UNPAID:
            # Money for a payment that is already complete or closed: keep it visible and refundable.
            return self._late(amount, connector_code, provider_reference, source, at)
        total = self.paid_amount + amount
        if total < self.amount:
            self.paid_amount = total
            self._count(connector_code, provider_reference)
            if self.status is PaymentStatus.CREATED:
                self._move(PaymentStatus.PENDING, source, at, {"connector": connector_code})
            self.connector_code = connector_code
            self._record(EventType.PARTIALLY_PAID, self.status, self.status, source, at,
                         {"credited": amount, "paid_amount": total, "remaining": self.amount - total,
                          "provider_reference": provider_reference})
            return CreditResult.PARTIAL
        if total > self.amount:
            self.flags.add(FLAG_OVERPAID)
        return self._settle(amount, connector_code, provider_reference, source, at)

    def _settle(self, amount: int, connector_code: str, provider_reference: str, source: EventSource,
                at: datetime) -> CreditResult:
        if self.status in CLOSED_UNPAID:
            return self._late(amount, connector_code, provider_reference, source, at)
        self.paid_amount += amount
        self._count(connector_code, provider_reference)
        self.connector_code = connector_code or self.connector_code
        self.provider_reference = provider_reference
        self.paid_at = at
        data: dict[str, Any] = {"amount": self.amount, "paid_amount": self.paid_amount, "connector": connector_code,
                                "provider_reference": provider_reference}
        if FLAG_OVERPAID in self.flags:
            data["overpaid_by"] = self.paid_amount - self.amount
        self._move(PaymentStatus.SUCCEEDED, source, at, data)
        return CreditResult.APPLIED

    def _late(self, amount: int, connector_code: str, provider_reference: str, source: EventSource,
              at: datetime) -> CreditResult:
        """Money arrived after the payment closed (or twice): record it and flag it for refund, never drop it."""
        self.paid_amount += amount
        self._count(connector_code, provider_reference)
        self.flags.add(FLAG_REFUND_REQUIRED)
        self.connector_code = self.connector_code or connector_code
        if not self.provider_reference:
            self.provider_reference = provider_reference
        self._record(EventType.LATE_SUCCESS, self.status, self.status, source, at,
                     {"credited": amount, "connector": connector_code, "provider_reference": provider_reference,
                      "refund_required": True})
        return CreditResult.LATE

    def _already_counted(self, connector_code: str, provider_reference: str) -> bool:
        """Whether this transaction is already in paid_amount. A report naming no transaction is the one that
        connector already reported; a named report matches the connector's earlier unnamed one, which it then
        names, so a later, different transaction is still recognised as new money."""
        key = _credit_key(connector_code, provider_reference)
        if key in self.credited:
            return True
        unnamed = _credit_key(connector_code, "")
        if not provider_reference:
            return any(earlier.startswith(unnamed) for earlier in self.credited)
        if unnamed in self.credited:
            self.credited[self.credited.index(unnamed)] = key
            return True
        return False

    def _count(self, connector_code: str, provider_reference: str) -> None:
        self.credited.append(_credit_key(connector_code, provider_reference))

    def fail(self, source: EventSource, at: datetime, reason: str = "") -> bool:
        """The counterpart declined; ignored (False) when the payment is no longer open."""
        if self.status not in OPEN_STATUSES:
            return False
        self._move(PaymentStatus.FAILED, source, at, {"reason": reason})
        return True

    def expire(self, at: datetime) -> None:
        if at < self.expires_at:
            raise FailedPrecondition(f"payment {self.reference} expires at {self.expires_at.isoformat()}",
                                     reason="NOT_EXPIRED_YET")
        self._move(PaymentStatus.EXPIRED, EventSource.EXPIRY, at)

    def cancel(self, at: datetime, reason: str) -> None:
        self._move(PaymentStatus.CANCELLED, EventSource.API, at, {"reason": reason})

    @property
    def refundable_amount(self) -> int:
        """What may still be refunded: what was paid minus what was refunded."""
        return self.paid_amount - self.refunded_amount

    def refund(self, amount: int, refund_id: str, at: datetime, source: EventSource = EventSource.API) -> None:
        """Refund part or all of what was paid; a late payment on a closed payment is refundable too."""
        # Late money keeps a closed or fully refunded payment where it is, but is refundable all the same.
        stays = self.status in CLOSED_UNPAID or self.status is PaymentStatus.REFUNDED
        refundable_state = self.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED) or (
            FLAG_REFUND_REQUIRED in self.flags and stays)
        if not refundable_state:
            raise FailedPrecondition(f"payment {self.reference} is {self.status.value}; only paid payments can be "
                                     "refunded", reason="ILLEGAL_TRANSITION",
                                     metadata={"from": self.status.value, "to": PaymentStatus.REFUNDED.value})
        if amount <= 0 or amount > self.refundable_amount:
            raise InvalidArgument.single("amount", f"must be between 1 and {self.refundable_amount} đồng "
                                                   f"(paid {self.paid_amount}, refunded {self.refunded_amount})")
        self.refunded_amount += amount
        data = {"refund_id": refund_id, "refunded": amount, "refunded_total": self.refunded_amount}
        if stays:
            # The payment stays as it is; the refund of the stray money is still an event the agency sees.
            if self.refundable_amount == 0:
                self.flags.discard(FLAG_REFUND_REQUIRED)
            self._record(EventType.REFUNDED, self.status, self.status, source, at, data)
            return
        target = PaymentStatus.REFUNDED if self.refundable_amount == 0 else PaymentStatus.PARTIALLY_REFUNDED
        self._move(target, source, at, data)

    def refund_failed(self, amount: int, refund_id: str, at: datetime, source: EventSource) -> None:
        """The counterpart reports that a refund it accepted never reached the payer: the money is still ours to
        return, so it counts as refundable again and the payment is flagged for a person."""
        before = self.status
        self.refunded_amount = max(self.refunded_amount - amount, 0)
        self.flags.add(FLAG_REFUND_FAILED)
        if self.status in CLOSED_UNPAID:
            self.flags.add(FLAG_REFUND_REQUIRED)   # late money: still to be given back
        elif self.status in (PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED):
            # Not a transition a person or counterpart may ask for, only this correction of the record.
            self.status = PaymentStatus.PARTIALLY_REFUNDED if self.refunded_amount else PaymentStatus.SUCCEEDED
        self._record(EventType.REFUND_FAILED, before, self.status, source, at,
                     {"refund_id": refund_id, "amount": amount, "refunded_total": self.refunded_amount})

    def take_events(self) -> list[PaymentEvent]:
        events, self.new_events = self.new_events, []
        return events


def _credit_key(connector_code: str, provider_reference: str) -> str:
    return f"{connector_code}/{provider_reference}"


@dataclass(frozen=True)
class ExpiryPolicy:
    """Bounds on how long a payment may stay open."""

    default: timedelta = timedelta(hours=24)
    minimum: timedelta = timedelta(minutes=1)
    maximum: timedelta = timedelta(days=30)
