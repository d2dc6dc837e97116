"""SQL repositories and the unit of work over the payment schema (PostgreSQL row locks, SKIP LOCKED)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from payment_service.adapters import orm
from payment_service.domain.model import (
    PAID_STATUSES,
    Agency,
    BeneficiaryAccount,
    CallbackSecret,
    ChannelChoice,
    EventSource,
    EventType,
    FeeKind,
    FeeLine,
    Payer,
    Payment,
    PaymentEvent,
    PaymentStatus,
)
from payment_service.domain.reconciliation import LedgerEntry, MatchStatus, ReconciliationItem
from payment_service.service_layer import ports
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
from servicekit.db import SqlUnitOfWork as BaseUnitOfWork

VIETNAM_OFFSET = 7
# Statements built once: SQLAlchemy caches their compiled form on the object, so the hot path skips rebuilding
# and re-keying them on every call.
INSERT_PAYMENT = sa.insert(orm.payments)
INSERT_EVENT = sa.insert(orm.payment_events)
INSERT_OUTBOX = sa.insert(orm.outbox)
_PAID = tuple(status.value for status in PAID_STATUSES)


def utc(moment: datetime) -> datetime:
    """Stored form: UTC (SQLite keeps no offset, so every value must be in one zone)."""
    return moment.astimezone(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored in UTC."""
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _must(moment: datetime | None) -> datetime:
    value = aware(moment)
    assert value is not None
    return value


def _vietnam_day(moment: datetime) -> date:
    return (utc(moment) + timedelta(hours=VIETNAM_OFFSET)).date()


# -- agencies -----------------------------------------------------------------------------------------------

class SqlAgencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _secrets(self, codes: Sequence[str]) -> dict[str, list[CallbackSecret]]:
        rows = self.session.execute(sa.select(orm.callback_secrets).where(
            orm.callback_secrets.c.agency_code.in_(codes))).all()
        found: dict[str, list[CallbackSecret]] = {}
        for row in rows:
            found.setdefault(row.agency_code, []).append(CallbackSecret(row.secret_id, row.secret,
                                                                        _must(row.created_at), aware(row.expires_at)))
        return found

    @staticmethod
    def _agency(row: Any, secrets: list[CallbackSecret]) -> Agency:
        return Agency(code=row.code, name=row.name, callback_url=row.callback_url,
                      accounts=[BeneficiaryAccount(a["bank_bin"], a["account"], a.get("name", ""))
                                for a in row.accounts],
                      channels=[ChannelChoice(c["connector_code"], int(c["priority"])) for c in row.channels],
                      secrets=secrets, created_at=_must(row.created_at), updated_at=_must(row.updated_at),
                      active=bool(row.active))

    def get(self, code: str, *, with_secrets: bool = True) -> Agency | None:
        row = self.session.execute(sa.select(orm.agencies).where(orm.agencies.c.code == code)).first()
        if row is None:
            return None
        return self._agency(row, self._secrets([code]).get(code, []) if with_secrets else [])

    def all(self) -> list[Agency]:
        rows = self.session.execute(sa.select(orm.agencies).order_by(orm.agencies.c.code)).all()
        secrets = self._secrets([row.code for row in rows])
        return [self._agency(row, secrets.get(row.code, [])) for row in rows]

    @staticmethod
    def _values(agency: Agency) -> dict[str, Any]:
        return {"name": agency.name, "callback_url": agency.callback_url,
                "accounts": [{"bank_bin": a.bank_bin, "account": a.account, "name": a.name} for a in agency.accounts],
                "channels": [{"connector_code": c.connector_code, "priority": c.priority} for c in agency.channels],
                "active": agency.active, "updated_at": utc(agency.updated_at)}

    def add(self, agency: Agency, idempotency_key: str) -> None:
        try:
            self.session.execute(sa.insert(orm.agencies).values(code=agency.code, created_at=utc(agency.created_at),
                                                                idempotency_key=idempotency_key,
                                                                **self._values(agency)))
            for secret in agency.secrets:
                self.add_secret(agency.code, secret)
        except IntegrityError:
            raise DuplicateKey(agency.code) from None

    def update(self, agency: Agency) -> None:
        self.session.execute(sa.update(orm.agencies).where(orm.agencies.c.code == agency.code)
                             .values(**self._values(agency)))

    def add_secret(self, agency_code: str, secret: CallbackSecret) -> None:
        self.session.execute(sa.insert(orm.callback_secrets).values(
            secret_id=secret.secret_id, agency_code=agency_code, secret=secret.secret,
            created_at=utc(secret.created_at), expires_at=utc(secret.expires_at) if secret.expires_at else None))

    def expire_secret(self, secret_id: str, expires_at: datetime) -> None:
        self.session.execute(sa.update(orm.callback_secrets).where(orm.callback_secrets.c.secret_id == secret_id)
                             .values(expires_at=utc(expires_at)))


# -- payments -----------------------------------------------------------------------------------------------

def _payment_row(payment: Payment) -> dict[str, Any]:
    """The mutable columns of a payment."""
    return {
        "status": payment.status.value, "updated_at": utc(payment.updated_at),
        "connector_code": payment.connector_code, "provider_reference": payment.provider_reference,
        "checkout_reference": payment.checkout_reference, "paid_amount": payment.paid_amount,
        "refunded_amount": payment.refunded_amount,
        "paid_at": utc(payment.paid_at) if payment.paid_at else None, "flags": ",".join(sorted(payment.flags)),
        "credited": list(payment.credited), "last_sequence": payment.last_sequence,
    }


def _payment(row: Any) -> Payment:
    return Payment(
        id=row.id, agency_code=row.agency_code, idempotency_key=row.idempotency_key, request_hash=row.request_hash,
        reference=row.reference, dossier_code=row.dossier_code, procedure_code=row.procedure_code,
        service_code=row.service_code, payer=Payer(row.payer_name, row.payer_national_id),
        fee_lines=[FeeLine(FeeKind(line[0]), line[1], line[2], int(line[3])) for line in row.fee_lines],
        amount=int(row.amount), beneficiary=BeneficiaryAccount(row.bank_bin, row.account, row.beneficiary_name),
        description=row.description, expires_at=_must(row.expires_at), created_at=_must(row.created_at),
        updated_at=_must(row.updated_at), status=PaymentStatus(row.status), qr_payload=row.qr_payload,
        connector_code=row.connector_code, provider_reference=row.provider_reference,
        checkout_reference=row.checkout_reference, paid_amount=int(row.paid_amount),
        refunded_amount=int(row.refunded_amount), paid_at=aware(row.paid_at),
        flags={flag for flag in row.flags.split(",") if flag}, credited=list(row.credited),
        last_sequence=int(row.last_sequence),
    )


def _event_row(event: PaymentEvent) -> dict[str, Any]:
    return {"event_id": event.event_id, "payment_id": event.payment_id, "agency_code": event.agency_code,
            "sequence": event.sequence, "type": event.type.value,
            "from_status": event.from_status.value if event.from_status else None,
            "to_status": event.to_status.value, "source": event.source.value,
            "occurred_at": utc(event.occurred_at), "data": event.data}


class SqlPaymentRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _append_events(self, payment: Payment) -> None:
        rows = [_event_row(e) for e in payment.new_events]
        if len(rows) == 1:
            self.session.execute(INSERT_EVENT, rows[0])
        elif rows:
            self.session.execute(INSERT_EVENT, rows)

    def add(self, payment: Payment, created_day: str) -> None:
        row = {
            "id": payment.id, "agency_code": payment.agency_code, "idempotency_key": payment.idempotency_key,
            "request_hash": payment.request_hash, "reference": payment.reference,
            "dossier_code": payment.dossier_code, "procedure_code": payment.procedure_code,
            "service_code": payment.service_code, "payer_name": payment.payer.name,
            "payer_national_id": payment.payer.national_id,
            "fee_lines": [[line.kind.value, line.code, line.name, line.amount] for line in payment.fee_lines],
            "amount": payment.amount, "bank_bin": payment.beneficiary.bank_bin,
            "account": payment.beneficiary.account, "beneficiary_name": payment.beneficiary.name,
            "description": payment.description, "expires_at": utc(payment.expires_at),
            "created_at": utc(payment.created_at), "created_day": created_day, "qr_payload": payment.qr_payload,
            **_payment_row(payment),
        }
        try:
            self.session.execute(INSERT_PAYMENT, row)
            self._append_events(payment)
        except IntegrityError:
            raise DuplicateKey(payment.idempotency_key) from None

    def save(self, payment: Payment) -> None:
        self.session.execute(sa.update(orm.payments).where(orm.payments.c.id == payment.id)
                             .values(**_payment_row(payment)))
        self._append_events(payment)

    def _one(self, condition: Any, lock: bool) -> Payment | None:
        query = sa.select(orm.payments).where(condition)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).first()
        return _payment(row) if row is not None else None

    def get(self, payment_id: str, *, lock: bool = False) -> Payment | None:
        return self._one(orm.payments.c.id == payment_id, lock)

    def get_by_reference(self, reference: str, *, lock: bool = False) -> Payment | None:
        return self._one(orm.payments.c.reference == reference, lock)

    def qr_state(self, *, payment_id: str = "", reference: str = "") -> QrState | None:
        table = orm.payments
        row = self.session.execute(sa.select(
            table.c.id, table.c.agency_code, table.c.reference, table.c.qr_payload, table.c.amount,
            table.c.paid_amount, table.c.status).where(
            table.c.id == payment_id if payment_id else table.c.reference == reference)).first()
        if row is None:
            return None
        return QrState(row.id, row.agency_code, row.reference, row.qr_payload, int(row.amount), int(row.paid_amount),
                       PaymentStatus(row.status))

    def get_by_idempotency_key(self, agency_code: str, key: str) -> Payment | None:
        return self._one(sa.and_(orm.payments.c.agency_code == agency_code,
                                 orm.payments.c.idempotency_key == key), False)

    def search(self, query: PaymentFilter, after: tuple[datetime, str] | None, limit: int) -> list[Payment]:
        table = orm.payments
        statement = sa.select(table)
        if query.agency_code:
            statement = statement.where(table.c.agency_code == query.agency_code)
        if query.dossier_code:
            statement = statement.where(table.c.dossier_code == query.dossier_code)
        if query.status is not None:
            statement = statement.where(table.c.status == query.status.value)
        if query.created_after is not None:
            statement = statement.where(table.c.created_at >= utc(query.created_after))
        if query.created_before is not None:
            statement = statement.where(table.c.created_at < utc(query.created_before))
        if after is not None:
            moment = utc(after[0])
            statement = statement.where(sa.or_(table.c.created_at < moment,
                                               sa.and_(table.c.created_at == moment, table.c.id < after[1])))
        statement = statement.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit)
        return [_payment(row) for row in self.session.execute(statement).all()]

    def claim_expired(self, now: datetime, limit: int) -> list[Payment]:
        table = orm.payments
        statement = (sa.select(table).where(table.c.status.in_(("created", "pending")),
                                            table.c.expires_at <= utc(now))
                     .order_by(table.c.expires_at).limit(limit).with_for_update(skip_locked=True))
        return [_payment(row) for row in self.session.execute(statement).all()]

    def claim_for_status_check(self, now: datetime, quiet_since: datetime, limit: int) -> list[Payment]:
        table = orm.payments
        statement = (sa.select(table).where(
            table.c.status == "pending", table.c.connector_code != "", table.c.updated_at <= utc(quiet_since),
            sa.or_(table.c.last_checked_at.is_(None), table.c.last_checked_at <= utc(quiet_since)))
            .order_by(table.c.updated_at).limit(limit).with_for_update(skip_locked=True))
        found = [_payment(row) for row in self.session.execute(statement).all()]
        if found:
            self.session.execute(sa.update(table).where(table.c.id.in_([p.id for p in found]))
                                 .values(last_checked_at=utc(now)))
        return found

    @staticmethod
    def _ledger_entry(row: Any) -> LedgerEntry:
        paid_at = aware(row.paid_at)
        return LedgerEntry(row.id, row.agency_code, row.reference, int(row.amount), PaymentStatus(row.status),
                           _vietnam_day(paid_at) if paid_at else None, int(row.paid_amount))

    def ledger(self, references: Sequence[str]) -> dict[str, LedgerEntry]:
        found: dict[str, LedgerEntry] = {}
        unique = sorted(set(references))
        for start in range(0, len(unique), 500):
            rows = self.session.execute(sa.select(orm.payments).where(
                orm.payments.c.reference.in_(unique[start:start + 500]))).all()
            found.update({row.reference: self._ledger_entry(row) for row in rows})
        return found

    def paid_through(self, connector_code: str, start: datetime, end: datetime) -> list[LedgerEntry]:
        table = orm.payments
        rows = self.session.execute(sa.select(table).where(
            table.c.connector_code == connector_code, table.c.status.in_(_PAID), table.c.paid_at >= utc(start),
            table.c.paid_at < utc(end))).all()
        return [self._ledger_entry(row) for row in rows]

    def statistics(self, first_day: str, last_day: str, agency_code: str | None) -> list[StatisticsCell]:
        table = orm.payments
        statement = (sa.select(table.c.created_day, table.c.agency_code, table.c.procedure_code,
                               table.c.connector_code, table.c.status, sa.func.count(),
                               sa.func.coalesce(sa.func.sum(table.c.paid_amount - table.c.refunded_amount), 0))
                     .where(table.c.created_day >= first_day, table.c.created_day <= last_day)
                     .group_by(table.c.created_day, table.c.agency_code, table.c.procedure_code,
                               table.c.connector_code, table.c.status))
        if agency_code:
            statement = statement.where(table.c.agency_code == agency_code)
        return [StatisticsCell(row[0], row[1], row[2], row[3], PaymentStatus(row[4]), int(row[5]), int(row[6]))
                for row in self.session.execute(statement).all()]


# -- events and outbox --------------------------------------------------------------------------------------

class SqlEventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _select(self) -> Any:
        events, outbox = orm.payment_events, orm.outbox
        return (sa.select(events, orm.payments.c.reference, outbox.c.status.label("delivery"),
                          outbox.c.attempts, outbox.c.last_error, outbox.c.delivered_at)
                .join(orm.payments, orm.payments.c.id == events.c.payment_id)
                .outerjoin(outbox, sa.and_(outbox.c.event_id == events.c.event_id,
                                           outbox.c.kind == OutboxKind.AGENCY_CALLBACK.value)))

    @staticmethod
    def _view(row: Any) -> EventView:
        event = PaymentEvent(row.event_id, row.payment_id, row.agency_code, int(row.sequence), EventType(row.type),
                             PaymentStatus(row.from_status) if row.from_status else None,
                             PaymentStatus(row.to_status), EventSource(row.source), _must(row.occurred_at),
                             dict(row.data or {}))
        delivery = DeliveryState(row.delivery) if row.delivery else DeliveryState.NOT_SENT
        return EventView(event, int(row.id), row.reference, delivery, int(row.attempts or 0), row.last_error or "",
                         aware(row.delivered_at))

    def search(self, agency_code: str | None, payment_id: str, delivery: DeliveryState | None, after: int,
             limit: int) -> list[EventView]:
        events = orm.payment_events
        statement = self._select().where(events.c.id > after)
        if agency_code:
            statement = statement.where(events.c.agency_code == agency_code)
        if payment_id:
            statement = statement.where(events.c.payment_id == payment_id)
        if delivery is DeliveryState.NOT_SENT:
            statement = statement.where(orm.outbox.c.id.is_(None))
        elif delivery is not None:
            statement = statement.where(orm.outbox.c.status == delivery.value)
        statement = statement.order_by(events.c.id).limit(limit)
        return [self._view(row) for row in self.session.execute(statement).all()]

    def get(self, event_id: str) -> EventView | None:
        row = self.session.execute(self._select().where(orm.payment_events.c.event_id == event_id)).first()
        return self._view(row) if row is not None else None

    def latest_cursor(self, agency_code: str | None) -> int:
        statement = sa.select(sa.func.max(orm.payment_events.c.id))
        if agency_code:
            statement = statement.where(orm.payment_events.c.agency_code == agency_code)
        value = self.session.execute(statement).scalar()
        return int(value or 0)


class SqlOutboxRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, entry: OutboxEntry) -> None:
        self.session.execute(INSERT_OUTBOX, {
            "kind": entry.kind.value, "event_id": entry.event_id, "payment_id": entry.payment_id,
            "agency_code": entry.agency_code, "payload": entry.payload, "status": entry.status.value,
            "attempts": entry.attempts, "next_attempt_at": utc(entry.next_attempt_at), "last_error": entry.last_error,
            "created_at": utc(entry.created_at), "confirmed_at": utc(entry.confirmed_at),
            "retry_until": utc(entry.retry_until), "delivered_at": None})

    def claim_due(self, now: datetime, lease_until: datetime, limit: int) -> list[OutboxEntry]:
        table = orm.outbox
        rows = self.session.execute(
            sa.select(table).where(table.c.status == DeliveryState.PENDING.value,
                                   table.c.next_attempt_at <= utc(now))
            .order_by(table.c.next_attempt_at).limit(limit).with_for_update(skip_locked=True)).all()
        if not rows:
            return []
        self.session.execute(sa.update(table).where(table.c.id.in_([row.id for row in rows]))
                             .values(next_attempt_at=utc(lease_until), attempts=table.c.attempts + 1))
        return [OutboxEntry(kind=OutboxKind(row.kind), event_id=row.event_id, payment_id=row.payment_id,
                            agency_code=row.agency_code, payload=row.payload, next_attempt_at=utc(lease_until),
                            created_at=_must(row.created_at), confirmed_at=_must(row.confirmed_at),
                            retry_until=_must(row.retry_until), status=DeliveryState.PENDING,
                            attempts=int(row.attempts) + 1, last_error=row.last_error, id=int(row.id))
                for row in rows]

    def mark_delivered(self, entry_id: int, at: datetime) -> None:
        self.session.execute(sa.update(orm.outbox).where(orm.outbox.c.id == entry_id).values(
            status=DeliveryState.DELIVERED.value, delivered_at=utc(at), last_error=""))

    def mark_failed(self, entry_id: int, error: str, next_attempt_at: datetime | None) -> None:
        values: dict[str, Any] = {"last_error": error}
        if next_attempt_at is None:
            values["status"] = DeliveryState.DEAD.value
        else:
            values["next_attempt_at"] = utc(next_attempt_at)
        self.session.execute(sa.update(orm.outbox).where(orm.outbox.c.id == entry_id).values(**values))

    def reschedule(self, kind: OutboxKind, event_id: str, now: datetime, retry_until: datetime, *,
                   only_dead: bool = False) -> bool:
        conditions = [orm.outbox.c.kind == kind.value, orm.outbox.c.event_id == event_id]
        if only_dead:
            conditions.append(orm.outbox.c.status == DeliveryState.DEAD.value)
        result = self.session.execute(sa.update(orm.outbox).where(*conditions).values(
            status=DeliveryState.PENDING.value, next_attempt_at=utc(now), retry_until=utc(retry_until)))
        return bool(getattr(result, "rowcount", 0))


# -- notifications, review queue, refunds, receipts, reconciliation -----------------------------------------

class SqlNotificationLog:
    def __init__(self, session: Session) -> None:
        self.session = session

    def seen(self, connector_code: str, notification_id: str) -> bool:
        table = orm.inbound_notifications
        return self.session.execute(sa.select(table.c.payment_id).where(
            table.c.connector_code == connector_code, table.c.notification_id == notification_id)).first() is not None

    def record(self, connector_code: str, notification_id: str, payment_id: str, outcome: str, at: datetime) -> None:
        try:
            with self.session.begin_nested():
                self.session.execute(sa.insert(orm.inbound_notifications).values(
                    connector_code=connector_code, notification_id=notification_id, payment_id=payment_id,
                    outcome=outcome, received_at=utc(at)))
        except IntegrityError:
            raise DuplicateKey(notification_id) from None


class SqlReviewRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, item: ReviewItem) -> None:
        self.session.execute(sa.insert(orm.review_items).values(
            id=item.id, connector_code=item.connector_code, notification_id=item.notification_id,
            amount=item.amount, transfer_note=item.transfer_note, provider_reference=item.provider_reference,
            reason=item.reason, payment_id=item.payment_id, agency_code=item.agency_code,
            created_at=utc(item.created_at), resolved_at=None))

    def search(self, include_resolved: bool, after: tuple[datetime, str] | None, limit: int) -> list[ReviewItem]:
        table = orm.review_items
        statement = sa.select(table)
        if not include_resolved:
            statement = statement.where(table.c.resolved_at.is_(None))
        if after is not None:
            moment = utc(after[0])
            statement = statement.where(sa.or_(table.c.created_at > moment,
                                               sa.and_(table.c.created_at == moment, table.c.id > after[1])))
        rows = self.session.execute(statement.order_by(table.c.created_at, table.c.id).limit(limit)).all()
        return [self._item(row) for row in rows]

    def get(self, item_id: str, *, lock: bool = False) -> ReviewItem | None:
        statement = sa.select(orm.review_items).where(orm.review_items.c.id == item_id)
        row = self.session.execute(statement.with_for_update() if lock else statement).first()
        return self._item(row) if row is not None else None

    def resolve(self, item_id: str, at: datetime, by: str, resolution: str) -> None:
        self.session.execute(sa.update(orm.review_items).where(orm.review_items.c.id == item_id)
                             .values(resolved_at=utc(at), resolved_by=by, resolution=resolution))

    @staticmethod
    def _item(row: Any) -> ReviewItem:
        return ReviewItem(row.id, row.connector_code, row.notification_id, int(row.amount), row.transfer_note,
                          row.provider_reference, row.reason, _must(row.created_at), row.payment_id,
                          row.agency_code, aware(row.resolved_at), row.resolved_by, row.resolution)


class SqlRefundRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, payment_id: str, idempotency_key: str) -> Refund | None:
        return self._one(orm.refunds.c.payment_id == payment_id, orm.refunds.c.idempotency_key == idempotency_key)

    def by_id(self, refund_id: str) -> Refund | None:
        return self._one(orm.refunds.c.id == refund_id)

    def _one(self, *conditions: sa.ColumnElement[bool]) -> Refund | None:
        row = self.session.execute(sa.select(orm.refunds).where(*conditions)).first()
        if row is None:
            return None
        return Refund(row.id, row.payment_id, row.idempotency_key, int(row.amount), row.provider_reference,
                      _must(row.created_at), row.status)

    def add(self, refund: Refund) -> None:
        self.session.execute(sa.insert(orm.refunds).values(
            id=refund.id, payment_id=refund.payment_id, idempotency_key=refund.idempotency_key, amount=refund.amount,
            provider_reference=refund.provider_reference, created_at=utc(refund.created_at), status=refund.status))

    def set_status(self, refund_id: str, status: str) -> None:
        self.session.execute(sa.update(orm.refunds).where(orm.refunds.c.id == refund_id).values(status=status))


class SqlReceiptRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, payment_id: str, number: str, document: bytes, at: datetime) -> None:
        self.session.execute(sa.insert(orm.receipts).values(payment_id=payment_id, number=number,
                                                            document=document, created_at=utc(at)))

    def get(self, payment_id: str) -> bytes | None:
        return self.session.execute(sa.select(orm.receipts.c.document).where(
            orm.receipts.c.payment_id == payment_id)).scalar()


class SqlReconciliationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @staticmethod
    def _report(row: Any) -> ReconciliationReport:
        return ReconciliationReport(row.id, row.connector_code, row.settlement_date, row.idempotency_key,
                                    _must(row.created_at))

    def find(self, connector_code: str, idempotency_key: str) -> ReconciliationReport | None:
        table = orm.reconciliation_reports
        row = self.session.execute(sa.select(table).where(table.c.connector_code == connector_code,
                                                          table.c.idempotency_key == idempotency_key)).first()
        return self._report(row) if row is not None else None

    def get(self, report_id: str) -> ReconciliationReport | None:
        table = orm.reconciliation_reports
        row = self.session.execute(sa.select(table).where(table.c.id == report_id)).first()
        return self._report(row) if row is not None else None

    def add(self, report: ReconciliationReport, items: Sequence[StoredReconciliationItem]) -> None:
        self.session.execute(sa.insert(orm.reconciliation_reports).values(
            id=report.id, connector_code=report.connector_code, settlement_date=report.settlement_date,
            idempotency_key=report.idempotency_key, created_at=utc(report.created_at)))
        if items:
            self.session.execute(sa.insert(orm.reconciliation_items), [{
                "report_id": report.id, "status": s.item.status.value, "reference": s.item.reference,
                "agency_code": s.item.agency_code, "payment_id": s.item.payment_id,
                "ledger_amount": s.item.ledger_amount, "bank_amount": s.item.bank_amount,
                "ledger_status": s.item.ledger_status, "bank_status": s.item.bank_status,
                "provider_reference": s.item.provider_reference,
                "settled_on": s.item.settled_on.isoformat() if s.item.settled_on else "",
                "note": s.item.note[:300], "resolved": s.resolved} for s in items])

    def items(self, report_id: str, agency_code: str | None, status: MatchStatus | None, after: int,
              limit: int) -> list[tuple[int, StoredReconciliationItem]]:
        table = orm.reconciliation_items
        statement = sa.select(table).where(table.c.report_id == report_id, table.c.id > after)
        if agency_code:
            statement = statement.where(table.c.agency_code == agency_code)
        if status is not None:
            statement = statement.where(table.c.status == status.value)
        rows = self.session.execute(statement.order_by(table.c.id).limit(limit)).all()
        return [(int(row.id), StoredReconciliationItem(ReconciliationItem(
            MatchStatus(row.status), row.reference, row.agency_code, row.payment_id,
            None if row.ledger_amount is None else int(row.ledger_amount),
            None if row.bank_amount is None else int(row.bank_amount), row.ledger_status, row.bank_status,
            row.provider_reference, date.fromisoformat(row.settled_on) if row.settled_on else None, row.note),
            bool(row.resolved))) for row in rows]


class SqlUnitOfWork(BaseUnitOfWork):
    """One transaction over every payment repository."""

    agencies: ports.AgencyRepository
    payments: ports.PaymentRepository
    events: ports.EventRepository
    outbox: ports.OutboxRepository
    notifications: ports.NotificationLog
    reviews: ports.ReviewRepository
    refunds: ports.RefundRepository
    receipts: ports.ReceiptRepository
    reconciliation: ports.ReconciliationRepository

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)

    def __enter__(self) -> Self:
        super().__enter__()
        session = self.session
        self.agencies = SqlAgencyRepository(session)
        self.payments = SqlPaymentRepository(session)
        self.events = SqlEventRepository(session)
        self.outbox = SqlOutboxRepository(session)
        self.notifications = SqlNotificationLog(session)
        self.reviews = SqlReviewRepository(session)
        self.refunds = SqlRefundRepository(session)
        self.receipts = SqlReceiptRepository(session)
        self.reconciliation = SqlReconciliationRepository(session)
        return self

    def commit(self) -> None:
        try:
            super().commit()
        except IntegrityError:
            self.session.rollback()
            raise DuplicateKey("commit") from None

