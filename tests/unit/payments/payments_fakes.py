"""Fakes for every payment port: in-memory unit of work, fake clock, fake connectors, and the wired services."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from payment_service.adapters.fake_connector import FakeConnector, FakeConnectors
from payment_service.adapters.receipts import Ed25519Signer, FakeReceiptIssuer
from payment_service.domain.commands import CreatePayment, FeeLineInput
from payment_service.domain.connector import ConnectorInfo
from payment_service.domain.model import (
    Agency,
    BeneficiaryAccount,
    CallbackSecret,
    ChannelChoice,
    Payment,
    PaymentStatus,
)
from payment_service.domain.reconciliation import LedgerEntry, MatchStatus
from payment_service.service_layer.access import Caller
from payment_service.service_layer.ports import (
    DeliveryState,
    DuplicateKey,
    EventView,
    OutboxEntry,
    OutboxKind,
    PaymentFilter,
    QrState,
    ReconciliationReport,
    Refund,
    ReviewItem,
    StatisticsCell,
    StoredReconciliationItem,
)
from payment_service.service_layer.reporting import Reporting
from payment_service.service_layer.services import VIETNAM, PaymentServices

_PAID = {PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED, PaymentStatus.PARTIALLY_REFUNDED}


@dataclass
class Store:
    """Everything the fake database holds."""

    agencies: dict[str, Agency] = field(default_factory=dict)
    payments: dict[str, Payment] = field(default_factory=dict)
    created_days: dict[str, str] = field(default_factory=dict)
    events: list[tuple[int, Any]] = field(default_factory=list)
    outbox: dict[int, OutboxEntry] = field(default_factory=dict)
    notifications: dict[tuple[str, str], str] = field(default_factory=dict)
    reviews: list[ReviewItem] = field(default_factory=list)
    refunds: dict[tuple[str, str], Refund] = field(default_factory=dict)
    receipts: dict[str, bytes] = field(default_factory=dict)
    reports: dict[str, ReconciliationReport] = field(default_factory=dict)
    report_items: list[tuple[int, str, StoredReconciliationItem]] = field(default_factory=list)
    last_checked: dict[str, datetime] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(1))


class FakeAgencies:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, code: str, *, with_secrets: bool = True) -> Agency | None:
        agency = self.store.agencies.get(code)
        return copy.deepcopy(agency) if agency else None

    def add(self, agency: Agency, idempotency_key: str) -> None:
        if agency.code in self.store.agencies:
            raise DuplicateKey(agency.code)
        self.store.agencies[agency.code] = copy.deepcopy(agency)

    def update(self, agency: Agency) -> None:
        secrets = self.store.agencies[agency.code].secrets
        self.store.agencies[agency.code] = copy.deepcopy(agency)
        self.store.agencies[agency.code].secrets = secrets

    def add_secret(self, agency_code: str, secret: CallbackSecret) -> None:
        self.store.agencies[agency_code].secrets.append(secret)

    def expire_secret(self, secret_id: str, expires_at: datetime) -> None:
        for agency in self.store.agencies.values():
            agency.secrets = [CallbackSecret(s.secret_id, s.secret, s.created_at, expires_at)
                              if s.secret_id == secret_id else s for s in agency.secrets]

    def all(self) -> list[Agency]:
        return [copy.deepcopy(a) for a in self.store.agencies.values()]


class FakePayments:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _append(self, payment: Payment) -> None:
        for event in payment.new_events:
            self.store.events.append((next(self.store.ids), event))

    def add(self, payment: Payment, created_day: str) -> None:
        for other in self.store.payments.values():
            if other.reference == payment.reference or (
                    other.agency_code, other.idempotency_key) == (payment.agency_code, payment.idempotency_key):
                raise DuplicateKey(payment.idempotency_key)
        stored = copy.deepcopy(payment)
        stored.new_events = []
        self.store.payments[payment.id] = stored
        self.store.created_days[payment.id] = created_day
        self._append(payment)

    def save(self, payment: Payment) -> None:
        stored = copy.deepcopy(payment)
        stored.new_events = []
        self.store.payments[payment.id] = stored
        self._append(payment)

    def get(self, payment_id: str, *, lock: bool = False) -> Payment | None:
        found = self.store.payments.get(payment_id)
        return copy.deepcopy(found) if found else None

    def get_by_reference(self, reference: str, *, lock: bool = False) -> Payment | None:
        return next((copy.deepcopy(p) for p in self.store.payments.values() if p.reference == reference), None)

    def qr_state(self, *, payment_id: str = "", reference: str = "") -> QrState | None:
        payment = self.get(payment_id) if payment_id else self.get_by_reference(reference)
        if payment is None:
            return None
        return QrState(payment.id, payment.agency_code, payment.reference, payment.qr_payload, payment.amount,
                       payment.paid_amount, payment.status)

    def get_by_idempotency_key(self, agency_code: str, key: str) -> Payment | None:
        return next((copy.deepcopy(p) for p in self.store.payments.values()
                     if (p.agency_code, p.idempotency_key) == (agency_code, key)), None)

    def search(self, query: PaymentFilter, after: tuple[datetime, str] | None, limit: int) -> list[Payment]:
        rows = [p for p in self.store.payments.values()
                if (not query.agency_code or p.agency_code == query.agency_code)
                and (not query.dossier_code or p.dossier_code == query.dossier_code)
                and (query.status is None or p.status is query.status)
                and (query.created_after is None or p.created_at >= query.created_after)
                and (query.created_before is None or p.created_at < query.created_before)
                and (after is None or (p.created_at, p.id) < after)]
        rows.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        return [copy.deepcopy(p) for p in rows[:limit]]

    def claim_expired(self, now: datetime, limit: int) -> list[Payment]:
        due = [p for p in self.store.payments.values()
               if p.status in (PaymentStatus.CREATED, PaymentStatus.PENDING) and p.expires_at <= now]
        return [copy.deepcopy(p) for p in due[:limit]]

    def claim_for_status_check(self, now: datetime, quiet_since: datetime, limit: int) -> list[Payment]:
        due = [p for p in self.store.payments.values()
               if p.status is PaymentStatus.PENDING and p.connector_code and p.updated_at <= quiet_since
               and self.store.last_checked.get(p.id, datetime.min.replace(tzinfo=UTC)) <= quiet_since][:limit]
        for payment in due:
            self.store.last_checked[payment.id] = now
        return [copy.deepcopy(p) for p in due]

    @staticmethod
    def _entry(p: Payment) -> LedgerEntry:
        return LedgerEntry(p.id, p.agency_code, p.reference, p.amount, p.status,
                           p.paid_at.astimezone(VIETNAM).date() if p.paid_at else None, p.paid_amount)

    def ledger(self, references: Sequence[str]) -> dict[str, LedgerEntry]:
        return {p.reference: self._entry(p) for p in self.store.payments.values() if p.reference in references}

    def paid_through(self, connector_code: str, start: datetime, end: datetime) -> list[LedgerEntry]:
        return [self._entry(p) for p in self.store.payments.values()
                if p.connector_code == connector_code and p.status in _PAID and p.paid_at
                and start <= p.paid_at < end]

    def statistics(self, first_day: str, last_day: str, agency_code: str | None) -> list[StatisticsCell]:
        cells: dict[tuple[str, str, str, str, PaymentStatus], list[int]] = {}
        for p in self.store.payments.values():
            day = self.store.created_days[p.id]
            if not first_day <= day <= last_day or (agency_code and p.agency_code != agency_code):
                continue
            cell = cells.setdefault((day, p.agency_code, p.procedure_code, p.connector_code, p.status), [0, 0])
            cell[0] += 1
            cell[1] += p.paid_amount - p.refunded_amount
        return [StatisticsCell(*key, *values) for key, values in cells.items()]


class FakeEvents:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _view(self, cursor: int, event: Any) -> EventView:
        payment = self.store.payments[event.payment_id]
        entry = next((e for e in self.store.outbox.values()
                      if e.event_id == event.event_id and e.kind is OutboxKind.AGENCY_CALLBACK), None)
        if entry is None:
            return EventView(event, cursor, payment.reference, DeliveryState.NOT_SENT)
        return EventView(event, cursor, payment.reference, entry.status, entry.attempts, entry.last_error,
                         entry.delivered_at)

    def search(self, agency_code: str | None, payment_id: str, delivery: DeliveryState | None, after: int,
               limit: int) -> list[EventView]:
        views = [self._view(cursor, event) for cursor, event in self.store.events
                 if cursor > after and (not agency_code or event.agency_code == agency_code)
                 and (not payment_id or event.payment_id == payment_id)]
        return [v for v in views if delivery is None or v.delivery is delivery][:limit]

    def get(self, event_id: str) -> EventView | None:
        return next((self._view(c, e) for c, e in self.store.events if e.event_id == event_id), None)

    def latest_cursor(self, agency_code: str | None) -> int:
        return max((c for c, e in self.store.events if not agency_code or e.agency_code == agency_code), default=0)


class FakeOutbox:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, entry: OutboxEntry) -> None:
        if any(e.kind is entry.kind and e.event_id == entry.event_id for e in self.store.outbox.values()):
            raise DuplicateKey(entry.event_id)
        stored = copy.deepcopy(entry)
        stored.id = next(self.store.ids)
        self.store.outbox[stored.id] = stored

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxEntry]:
        due = sorted((e for e in self.store.outbox.values()
                      if e.status is DeliveryState.PENDING and e.next_attempt_at <= now),
                     key=lambda e: e.next_attempt_at)[:limit]
        for entry in due:
            entry.next_attempt_at = lease_until
            entry.attempts += 1
        return [copy.deepcopy(e) for e in due]

    def mark_delivered(self, entry_id: int, at: datetime) -> None:
        entry = self.store.outbox[entry_id]
        entry.status, entry.delivered_at, entry.last_error = DeliveryState.DELIVERED, at, ""

    def mark_failed(self, entry_id: int, error: str, next_attempt_at: datetime | None) -> None:
        entry = self.store.outbox[entry_id]
        entry.last_error = error
        if next_attempt_at is None:
            entry.status = DeliveryState.DEAD
        else:
            entry.next_attempt_at = next_attempt_at

    def reschedule(self, kind: OutboxKind, event_id: str, now: datetime, retry_until: datetime, *,
                   only_dead: bool = False) -> bool:
        for entry in self.store.outbox.values():
            if entry.kind is kind and entry.event_id == event_id and (not only_dead or
                                                                       entry.status is DeliveryState.DEAD):
                entry.status, entry.next_attempt_at, entry.retry_until = DeliveryState.PENDING, now, retry_until
                return True
        return False


class FakeNotifications:
    def __init__(self, store: Store) -> None:
        self.store = store

    def seen(self, connector_code: str, notification_id: str) -> bool:
        return (connector_code, notification_id) in self.store.notifications

    def record(self, connector_code: str, notification_id: str, payment_id: str, outcome: str, at: datetime) -> None:
        if (connector_code, notification_id) in self.store.notifications:
            raise DuplicateKey(notification_id)
        self.store.notifications[(connector_code, notification_id)] = payment_id


class FakeReviews:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, item: ReviewItem) -> None:
        self.store.reviews.append(item)

    def search(self, include_resolved: bool, after: tuple[datetime, str] | None, limit: int) -> list[ReviewItem]:
        items = sorted(self.store.reviews, key=lambda i: (i.created_at, i.id))
        return [i for i in items if (after is None or (i.created_at, i.id) > after)
                and (include_resolved or i.resolved_at is None)][:limit]

    def get(self, item_id: str, *, lock: bool = False) -> ReviewItem | None:
        return next((item for item in self.store.reviews if item.id == item_id), None)

    def resolve(self, item_id: str, at: datetime, by: str, resolution: str) -> None:
        self.store.reviews = [dataclasses.replace(item, resolved_at=at, resolved_by=by, resolution=resolution)
                              if item.id == item_id else item for item in self.store.reviews]


class FakeRefunds:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, payment_id: str, idempotency_key: str) -> Refund | None:
        return self.store.refunds.get((payment_id, idempotency_key))

    def by_id(self, refund_id: str) -> Refund | None:
        return next((refund for refund in self.store.refunds.values() if refund.id == refund_id), None)

    def add(self, refund: Refund) -> None:
        self.store.refunds[(refund.payment_id, refund.idempotency_key)] = refund

    def set_status(self, refund_id: str, status: str) -> None:
        refund = self.by_id(refund_id)
        if refund is not None:
            self.store.refunds[(refund.payment_id, refund.idempotency_key)] = dataclasses.replace(refund, status=status)


class FakeReceipts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, payment_id: str, number: str, document: bytes, at: datetime) -> None:
        if payment_id in self.store.receipts:
            raise DuplicateKey(number)
        self.store.receipts[payment_id] = document

    def get(self, payment_id: str) -> bytes | None:
        return self.store.receipts.get(payment_id)


class FakeReconciliation:
    def __init__(self, store: Store) -> None:
        self.store = store

    def find(self, connector_code: str, idempotency_key: str) -> ReconciliationReport | None:
        return next((r for r in self.store.reports.values()
                     if (r.connector_code, r.idempotency_key) == (connector_code, idempotency_key)), None)

    def get(self, report_id: str) -> ReconciliationReport | None:
        return self.store.reports.get(report_id)

    def add(self, report: ReconciliationReport, items: Sequence[StoredReconciliationItem]) -> None:
        self.store.reports[report.id] = report
        self.store.report_items.extend((next(self.store.ids), report.id, item) for item in items)

    def items(self, report_id: str, agency_code: str | None, status: MatchStatus | None, after: int,
              limit: int) -> list[tuple[int, StoredReconciliationItem]]:
        return [(i, s) for i, r, s in self.store.report_items
                if r == report_id and i > after and (not agency_code or s.item.agency_code == agency_code)
                and (status is None or s.item.status is status)][:limit]


class FakeUnitOfWork:
    """All repositories over one in-memory store; changes not committed are rolled back on exit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.commits = 0

    def __enter__(self) -> FakeUnitOfWork:
        self._snapshot = copy.deepcopy({k: v for k, v in vars(self.store).items() if k != "ids"})
        self.agencies = FakeAgencies(self.store)
        self.payments = FakePayments(self.store)
        self.events = FakeEvents(self.store)
        self.outbox = FakeOutbox(self.store)
        self.notifications = FakeNotifications(self.store)
        self.reviews = FakeReviews(self.store)
        self.refunds = FakeRefunds(self.store)
        self.receipts = FakeReceipts(self.store)
        self.reconciliation = FakeReconciliation(self.store)
        self._committed = False
        return self

    def __exit__(self, *args: object) -> None:
        if not self._committed:
            self.rollback()

    def commit(self) -> None:
        self._committed = True
        self.commits += 1
        self._snapshot = copy.deepcopy({k: v for k, v in vars(self.store).items() if k != "ids"})

    def rollback(self) -> None:
        for key, value in copy.deepcopy(self._snapshot).items():
            setattr(self.store, key, value)


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.moment = start

    def now(self) -> datetime:
        return self.moment

    def advance(self, **delta: float) -> None:
        self.moment += timedelta(**delta)


class CountingNotifier:
    def __init__(self) -> None:
        self.count = 0

    def notify(self) -> None:
        self.count += 1


T0 = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)  # 10:00 in Viet Nam
HCM_ACCOUNT = BeneficiaryAccount("970405", "7111000000001", "KBNN TP Ho Chi Minh")
OTHER_ACCOUNT = BeneficiaryAccount("970415", "7111000000002", "KBNN TP Ho Chi Minh")
HN_ACCOUNT = BeneficiaryAccount("970405", "7111000000101", "KBNN Ha Noi")
HCM = Caller("hcm-system", "HCM", frozenset({"payments.create", "payments.read"}))
HN = Caller("hn-system", "HN", frozenset({"payments.create", "payments.read"}))
ADMIN = Caller("operator", "", frozenset({"payments.admin"}))


@dataclass
class World:
    """The wired services with handles on every fake."""

    store: Store
    clock: FakeClock
    connectors: FakeConnectors
    bank: FakeConnector
    backup: FakeConnector
    vietqr: FakeConnector
    notifier: CountingNotifier
    signer: Ed25519Signer
    issuer: FakeReceiptIssuer
    services: PaymentServices
    reporting: Reporting

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store)

    def command(self, key: str = "key-1", **changes: Any) -> CreatePayment:
        values: dict[str, Any] = {
            "agency_code": "HCM", "idempotency_key": key, "dossier_code": "HS-2026-000123",
            "procedure_code": "1.000046", "service_code": "GPLX", "payer_name": "Nguyễn Văn An",
            "payer_national_id": "079090001234",
            "fee_lines": (FeeLineInput("le_phi", "LP01", "Lệ phí cấp giấy phép", 135_000),
                          FeeLineInput("phi", "P01", "Phí thẩm định", 50_000)),
            "total_amount": 185_000, "beneficiary_bin": HCM_ACCOUNT.bank_bin,
            "beneficiary_account": HCM_ACCOUNT.account, "expires_at": None, "description": "",
        }
        values.update(changes)
        return CreatePayment(**values)

    def create(self, key: str = "key-1", caller: Caller = HCM, **changes: Any) -> Payment:
        payment, _ = self.services.create_payment(caller, self.command(key, **changes))
        return payment

    def stored(self, payment_id: str) -> Payment:
        return self.store.payments[payment_id]

    def outbox(self, kind: OutboxKind | None = None) -> list[OutboxEntry]:
        return [e for e in self.store.outbox.values() if kind is None or e.kind is kind]


def _agency(code: str, account: BeneficiaryAccount, extra: tuple[BeneficiaryAccount, ...] = ()) -> Agency:
    return Agency(code=code, name=f"Agency {code}", callback_url=f"https://{code.lower()}.example.vn/callbacks",
                  accounts=[account, *extra],
                  channels=[ChannelChoice("bank_a", 1), ChannelChoice("bank_b", 2), ChannelChoice("vietqr", 3)],
                  secrets=[CallbackSecret(f"s-{code}", f"secret-{code}", T0 - timedelta(days=10))],
                  created_at=T0 - timedelta(days=10), updated_at=T0 - timedelta(days=10))


def make_world() -> World:
    store = Store()
    store.agencies["HCM"] = _agency("HCM", HCM_ACCOUNT, (OTHER_ACCOUNT,))
    store.agencies["HN"] = _agency("HN", HN_ACCOUNT)
    clock = FakeClock(T0)
    bank = FakeConnector(info=ConnectorInfo("bank_a", "Bank A", "bank"), secret="a")
    backup = FakeConnector(info=ConnectorInfo("bank_b", "Bank B", "bank"), secret="b")
    vietqr = FakeConnector(info=ConnectorInfo("vietqr", "VietQR", "vietqr", supports_refund=False), secret="q")
    connectors = FakeConnectors(bank, backup, vietqr)
    notifier = CountingNotifier()
    signer = Ed25519Signer.generate("test-receipts")
    services = PaymentServices(lambda: FakeUnitOfWork(store), clock=clock, connectors=connectors, signer=signer,
                               availability=connectors, notifier=notifier)
    return World(store, clock, connectors, bank, backup, vietqr, notifier, signer, FakeReceiptIssuer(), services,
                 Reporting(services))


def settlement_day(moment: datetime) -> date:
    return moment.astimezone(VIETNAM).date()
