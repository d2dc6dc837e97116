"""The ports the payment use cases need (unit of work, repositories, clock, senders, issuers) and their records."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from payment_service.domain.connector import Connector
from payment_service.domain.model import Agency, CallbackSecret, Payment, PaymentEvent, PaymentStatus
from payment_service.domain.reconciliation import LedgerEntry, MatchStatus, ReconciliationItem


class DuplicateKey(Exception):
    """An insert hit a unique constraint (idempotency key, reference, notification id)."""


class OutboxKind(enum.Enum):
    """What an outbox row delivers."""

    AGENCY_CALLBACK = "agency_callback"
    RECEIPT = "receipt"


class DeliveryState(enum.Enum):
    """Where an outbox row is."""

    NOT_SENT = "not_sent"    # only reported for events without an outbox row
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


@dataclass
class OutboxEntry:
    """One delivery to make: an agency callback or a receipt for the wallet."""

    kind: OutboxKind
    event_id: str
    payment_id: str
    agency_code: str
    payload: str
    next_attempt_at: datetime
    created_at: datetime
    confirmed_at: datetime
    retry_until: datetime
    status: DeliveryState = DeliveryState.PENDING
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = None
    id: int | None = None


@dataclass(frozen=True)
class EventView:
    """An event with its position in the agency's stream and the state of its callback."""

    event: PaymentEvent
    cursor: int
    reference: str
    delivery: DeliveryState
    attempts: int = 0
    last_error: str = ""
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class ReviewItem:
    """A bank credit a person must look at."""

    id: str
    connector_code: str
    notification_id: str
    amount: int
    transfer_note: str
    provider_reference: str
    reason: str
    created_at: datetime
    payment_id: str = ""
    agency_code: str = ""
    resolved_at: datetime | None = None
    resolved_by: str = ""
    resolution: str = ""


@dataclass(frozen=True)
class Refund:
    """A refund made through a connector."""

    id: str
    payment_id: str
    idempotency_key: str
    amount: int
    provider_reference: str
    created_at: datetime
    # "accepted" when the counterpart took it; "succeeded" or "failed" once a REFUND_RESULT says how it ended.
    status: str = "accepted"


@dataclass(frozen=True)
class ReconciliationReport:
    """One reconciliation run over one connector's settlement day."""

    id: str
    connector_code: str
    settlement_date: str
    idempotency_key: str
    created_at: datetime


@dataclass(frozen=True)
class StoredReconciliationItem:
    """A report line as stored, with whether a status query resolved it."""

    item: ReconciliationItem
    resolved: bool = False


@dataclass(frozen=True)
class PaymentFilter:
    """What ListPayments asks for."""

    agency_code: str | None
    dossier_code: str = ""
    status: PaymentStatus | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


@dataclass(frozen=True)
class StatisticsCell:
    """Count and paid amount of payments created on one day, grouped by agency, procedure, connector, status."""

    day: str
    agency_code: str
    procedure_code: str
    connector_code: str
    status: PaymentStatus
    count: int
    paid_amount: int


class AgencyRepository(Protocol):
    def get(self, code: str, *, with_secrets: bool = True) -> Agency | None: ...
    def add(self, agency: Agency, idempotency_key: str) -> None: ...
    def update(self, agency: Agency) -> None: ...
    def add_secret(self, agency_code: str, secret: CallbackSecret) -> None: ...
    def expire_secret(self, secret_id: str, expires_at: datetime) -> None: ...
    def all(self) -> list[Agency]: ...


@dataclass(frozen=True)
class QrState:
    """What a payment's QR image depends on: read on every image request, so only these columns."""

    id: str
    agency_code: str
    reference: str
    qr_payload: str
    amount: int
    paid_amount: int
    status: PaymentStatus


class PaymentRepository(Protocol):
    def add(self, payment: Payment, created_day: str) -> None:
        """Insert the payment and its new events; DuplicateKey on a taken idempotency key or reference."""

    def save(self, payment: Payment) -> None:
        """Write the mutable fields and append the payment's new events."""

    def get(self, payment_id: str, *, lock: bool = False) -> Payment | None: ...
    def get_by_reference(self, reference: str, *, lock: bool = False) -> Payment | None: ...
    def get_by_idempotency_key(self, agency_code: str, key: str) -> Payment | None: ...
    def qr_state(self, *, payment_id: str = "", reference: str = "") -> QrState | None: ...
    def search(self, query: PaymentFilter, after: tuple[datetime, str] | None, limit: int) -> list[Payment]: ...

    def claim_expired(self, now: datetime, limit: int) -> list[Payment]:
        """Open payments past their expiry, locked and skipped by other replicas."""

    def claim_for_status_check(self, now: datetime, quiet_since: datetime, limit: int) -> list[Payment]:
        """PENDING payments with a connector, unchanged and unchecked since ``quiet_since``, locked; marks them
        checked at ``now`` so other replicas leave them alone."""

    def ledger(self, references: Sequence[str]) -> dict[str, LedgerEntry]: ...
    def paid_through(self, connector_code: str, start: datetime, end: datetime) -> list[LedgerEntry]: ...
    def statistics(self, first_day: str, last_day: str, agency_code: str | None) -> list[StatisticsCell]: ...


class EventRepository(Protocol):
    def search(self, agency_code: str | None, payment_id: str, delivery: DeliveryState | None, after: int,
             limit: int) -> list[EventView]: ...
    def get(self, event_id: str) -> EventView | None: ...
    def latest_cursor(self, agency_code: str | None) -> int: ...


class OutboxRepository(Protocol):
    def add(self, entry: OutboxEntry) -> None: ...

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxEntry]:
        """Due PENDING rows, locked with SKIP LOCKED and leased until ``lease_until``; attempts incremented."""

    def mark_delivered(self, entry_id: int, at: datetime) -> None: ...
    def mark_failed(self, entry_id: int, error: str, next_attempt_at: datetime | None) -> None:
        """Schedule a retry at ``next_attempt_at``, or dead-letter the row when it is None."""

    def reschedule(self, kind: OutboxKind, event_id: str, now: datetime, retry_until: datetime, *,
                   only_dead: bool = False) -> bool: ...


class NotificationLog(Protocol):
    def seen(self, connector_code: str, notification_id: str) -> bool: ...
    def record(self, connector_code: str, notification_id: str, payment_id: str, outcome: str,
               at: datetime) -> None:
        """DuplicateKey when this notification was already recorded."""


class ReviewRepository(Protocol):
    def add(self, item: ReviewItem) -> None: ...
    def search(self, include_resolved: bool, after: tuple[datetime, str] | None, limit: int) -> list[ReviewItem]: ...
    def get(self, item_id: str, *, lock: bool = False) -> ReviewItem | None: ...
    def resolve(self, item_id: str, at: datetime, by: str, resolution: str) -> None: ...


class RefundRepository(Protocol):
    def get(self, payment_id: str, idempotency_key: str) -> Refund | None: ...
    def by_id(self, refund_id: str) -> Refund | None: ...
    def add(self, refund: Refund) -> None: ...
    def set_status(self, refund_id: str, status: str) -> None: ...


class ReceiptRepository(Protocol):
    def add(self, payment_id: str, number: str, document: bytes, at: datetime) -> None: ...
    def get(self, payment_id: str) -> bytes | None: ...


class ReconciliationRepository(Protocol):
    def find(self, connector_code: str, idempotency_key: str) -> ReconciliationReport | None: ...
    def get(self, report_id: str) -> ReconciliationReport | None: ...
    def add(self, report: ReconciliationReport, items: Sequence[StoredReconciliationItem]) -> None: ...
    def items(self, report_id: str, agency_code: str | None, status: MatchStatus | None, after: int,
              limit: int) -> list[tuple[int, StoredReconciliationItem]]: ...


class UnitOfWork(Protocol):
    """One transaction over every repository: ``with uow: ...; uow.commit()``."""

    agencies: AgencyRepository
    payments: PaymentRepository
    events: EventRepository
    outbox: OutboxRepository
    notifications: NotificationLog
    reviews: ReviewRepository
    refunds: RefundRepository
    receipts: ReceiptRepository
    reconciliation: ReconciliationRepository

    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class ConnectorLookup(Protocol):
    """The configured connectors by code (the connector registry)."""

    def get(self, code: str) -> Connector | None: ...
    def codes(self) -> list[str]: ...


class Availability(Protocol):
    """Whether a connector may be used now (False while its circuit breaker is open)."""

    def is_available(self, code: str) -> bool: ...


class CallbackSender(Protocol):
    """POSTs a callback body; returns the HTTP status; raises OSError-like errors on transport failure."""

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_seconds: float) -> int: ...


@dataclass(frozen=True)
class SignedReceipt:
    """A receipt document and its detached signature, ready for the payer's wallet."""

    number: str
    payer_national_id: str
    payment_id: str
    content: bytes            # the signed XML receipt (fields, SignedContent = canonical JSON, Signature)
    content_type: str
    signature: str            # base64url Ed25519 signature over the canonical JSON of the receipt
    algorithm: str
    key_id: str


class ReceiptSigner(Protocol):
    key_id: str
    algorithm: str

    def sign(self, content: bytes) -> bytes: ...


class ReceiptIssuer(Protocol):
    """Issues a signed receipt into the payer's wallet; idempotent on the receipt number."""

    def issue(self, receipt: SignedReceipt) -> str: ...


class Notifier(Protocol):
    """In-process wake-up after a commit that added outbox rows or events."""

    def notify(self) -> None: ...

