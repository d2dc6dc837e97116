"""Payment use cases: one command in, ports injected; each writes state and its outbox rows in one transaction."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from payment_service.domain import reference as references
from payment_service.domain.commands import CreatePayment, check_text, validate_create
from payment_service.domain.connector import (
    CallbackOutcome,
    Connector,
    ConnectorError,
    ConnectorInfo,
    ConnectorResult,
    ConnectorStatus,
    InboundNotification,
    NotificationKind,
    PaymentOrder,
)
from payment_service.domain.model import (
    FLAG_OVERPAID,
    OPEN_STATUSES,
    Agency,
    CallbackSecret,
    CreditResult,
    EventSource,
    EventType,
    ExpiryPolicy,
    FeeKind,
    FeeLine,
    Payer,
    Payment,
    PaymentEvent,
    PaymentStatus,
)
from payment_service.domain.receipt import CONTENT_TYPE, VIETNAM, canonical_json, receipt_document, receipt_xml
from payment_service.domain.vietqr import payment_qr, to_ascii_note
from payment_service.service_layer.access import SCOPE_CREATE, SCOPE_READ, Caller
from payment_service.service_layer.ports import (
    Availability,
    Clock,
    ConnectorLookup,
    DuplicateKey,
    EventView,
    Notifier,
    OutboxEntry,
    OutboxKind,
    PaymentFilter,
    ReceiptSigner,
    Refund,
    ReviewItem,
    SignedReceipt,
    UnitOfWork,
    UnitOfWorkFactory,
)
from servicekit.errors import (
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    ViolationCollector,
)

log = logging.getLogger("dvc.payments")

# Business days (statistics, receipts) are counted in Viet Nam time, which has no daylight saving.
DEFAULT_PAGE = 50
MAX_PAGE = 500
AGENCY_CACHE_SECONDS = 5.0
REFUND_NAMESPACE = uuid.UUID("5d1b9a4e-2f0c-4c61-9a53-7e0b3c5d8f21")  # refund ids derived from (payment, key)


class SystemClock:
    """The real clock, always timezone-aware UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class AlwaysAvailable:
    """Availability until the circuit breakers are wired: every configured connector is usable."""

    def is_available(self, code: str) -> bool:
        return True


class NoNotifier:
    def notify(self) -> None:
        return None


@dataclass(frozen=True)
class ServiceConfig:
    """Tunable policy of the payment service."""

    public_base_url: str = "http://127.0.0.1:8082"
    expiry: ExpiryPolicy = field(default_factory=ExpiryPolicy)
    retry_window: timedelta = timedelta(days=3)
    status_check_after: timedelta = timedelta(minutes=2)
    previous_secret_ttl: timedelta = timedelta(days=1)
    max_previous_secret_ttl: timedelta = timedelta(days=7)


def page_size(requested: int, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    if requested < 0:
        raise InvalidArgument.single("page_size", "must not be negative")
    return min(requested or default, maximum)


def encode_token(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _bad_token() -> InvalidArgument:
    return InvalidArgument.single("page_token", "is not a token this service returned; start again without one")


def _decode_token(token: str) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError:
        raise _bad_token() from None


def decode_position(token: str) -> tuple[datetime, str] | None:
    """A (created_at, id) page token; any other shape is the caller's mistake, never an internal error."""
    cursor = _decode_token(token)
    if cursor is None:
        return None
    try:
        moment, row_id = cursor
        return datetime.fromisoformat(moment), str(row_id)
    except (TypeError, ValueError):
        raise _bad_token() from None


def decode_offset(token: str) -> int:
    """A numeric page token (0 without one)."""
    cursor = _decode_token(token)
    if cursor is None:
        return 0
    if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor < 0:
        raise _bad_token()
    return cursor


def callback_body(payment: Payment, event: PaymentEvent) -> str:
    """The JSON an agency receives for one event: enough to act without calling back."""
    return json.dumps({
        "event_id": event.event_id, "type": event.type.value, "sequence": event.sequence,
        "occurred_at": event.occurred_at.isoformat(), "source": event.source.value,
        "payment": {"id": payment.id, "reference": payment.reference, "agency_code": payment.agency_code,
                    "dossier_code": payment.dossier_code, "procedure_code": payment.procedure_code,
                    "status": payment.status.value, "amount": payment.amount, "paid_amount": payment.paid_amount,
                    "refunded_amount": payment.refunded_amount, "connector": payment.connector_code,
                    "provider_reference": payment.provider_reference,
                    "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
                    "flags": sorted(payment.flags)},
        "previous_status": event.from_status.value if event.from_status else None,
        "data": event.data,
    }, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class ConnectorHealthView:
    """One connector as GetConnectorHealth shows it."""

    info: ConnectorInfo
    available: bool
    breaker_state: str = ""
    consecutive_failures: int = 0
    last_error_kind: str = ""
    last_success_at: datetime | None = None


class PaymentServices:
    """Every payment use case, over injected ports."""

    def __init__(self, uow_factory: UnitOfWorkFactory, *, clock: Clock, connectors: ConnectorLookup,
                 signer: ReceiptSigner, availability: Availability | None = None, notifier: Notifier | None = None,
                 config: ServiceConfig | None = None,
                 new_reference: Callable[[], str] = references.new_reference) -> None:
        self.uow_factory = uow_factory
        self.clock = clock
        self.connectors = connectors
        self.signer = signer
        self.availability = availability or AlwaysAvailable()
        self.notifier = notifier or NoNotifier()
        self.config = config or ServiceConfig()
        self._new_reference = new_reference
        self._agency_cache: dict[str, tuple[float, Agency]] = {}
        self._cache_lock = threading.Lock()

    # -- creating and reading payments ------------------------------------------------------------------

    def create_payment(self, caller: Caller, command: CreatePayment) -> tuple[Payment, bool]:
        """Create the payment, or return the one this idempotency key already created (replayed=True)."""
        caller.require(SCOPE_CREATE)
        if command.agency_code != caller.own_agency():
            raise FailedPrecondition("the command's agency differs from the caller's", reason="AGENCY_MISMATCH")
        request_hash = command.canonical_hash()
        # The agency (its accounts) is read through a short cache: creating is the hot path, and a change to an
        # agency's accounts may take AGENCY_CACHE_SECONDS to apply to new payments.
        agency = self.cached_agency(command.agency_code)
        if agency is None or not agency.active:
            raise NotFound(f"agency {command.agency_code!r} is not registered with the payment platform",
                           reason="UNKNOWN_AGENCY")
        for _attempt in range(3):
            now = self.clock.now()
            with self.uow_factory() as uow:
                try:
                    expires_at = validate_create(command, agency, now, self.config.expiry)
                except InvalidArgument:
                    # A retry after its expiry passed is still a retry: answer with the payment it made.
                    replay = self._replay(uow, command, request_hash)
                    if replay is not None:
                        return replay, True
                    raise
                payment = self._new_payment(command, agency, request_hash, expires_at, now)
                try:
                    uow.payments.add(payment, now.astimezone(VIETNAM).date().isoformat())
                    uow.commit()
                    payment.take_events()
                    return payment, False
                except DuplicateKey:
                    uow.rollback()
            # Lost a race on the idempotency key (the other request committed first), or drew a taken reference.
            with self.uow_factory() as uow:
                replay = self._replay(uow, command, request_hash)
                if replay is not None:
                    return replay, True
        raise Unavailable("could not allocate a unique payment reference; retry", reason="REFERENCE_EXHAUSTED")

    def _replay(self, uow: UnitOfWork, command: CreatePayment, request_hash: str) -> Payment | None:
        existing = uow.payments.get_by_idempotency_key(command.agency_code, command.idempotency_key)
        if existing is None:
            return None
        if existing.request_hash != request_hash:
            raise Conflict(f"idempotency key {command.idempotency_key!r} was used for a different payment "
                           f"({existing.id}); use a new key for a new payment", reason="IDEMPOTENCY_KEY_REUSED",
                           metadata={"payment_id": existing.id})
        return existing

    def _new_payment(self, command: CreatePayment, agency: Agency, request_hash: str, expires_at: datetime,
                     now: datetime) -> Payment:
        account = agency.owns_account(command.beneficiary_bin, command.beneficiary_account)
        assert account is not None  # validate_create checked it
        reference = self._new_reference()
        purpose = command.description or f"{command.procedure_code} {command.dossier_code}"
        return Payment.create(
            id=uuid.uuid4().hex, agency_code=agency.code, idempotency_key=command.idempotency_key,
            request_hash=request_hash, reference=reference, dossier_code=command.dossier_code,
            procedure_code=command.procedure_code, service_code=command.service_code,
            payer=Payer(command.payer_name.strip(), command.payer_national_id),
            fee_lines=[FeeLine(FeeKind(line.kind), line.code, line.name, line.amount) for line in command.fee_lines],
            amount=command.total_amount, beneficiary=account, description=command.description,
            expires_at=expires_at, created_at=now, updated_at=now,
            qr_payload=payment_qr(account.bank_bin, account.account, command.total_amount, reference, purpose),
        )

    def _agency(self, uow: UnitOfWork, code: str, *, with_secrets: bool = True) -> Agency:
        agency = uow.agencies.get(code, with_secrets=with_secrets)
        if agency is None or not agency.active:
            raise NotFound(f"agency {code!r} is not registered with the payment platform", reason="UNKNOWN_AGENCY")
        return agency

    def _visible_payment(self, uow: UnitOfWork, caller: Caller, payment_id: str = "", reference: str = "",
                         *, lock: bool = False) -> Payment:
        if payment_id:
            payment = uow.payments.get(payment_id, lock=lock)
        elif reference:
            payment = uow.payments.get_by_reference(reference.strip().upper(), lock=lock)
        else:
            raise InvalidArgument.single("payment_id", "give a payment id or a reference")
        if payment is None:
            raise NotFound(f"no payment {payment_id or reference!r}", reason="PAYMENT_NOT_FOUND")
        caller.check_agency(payment.agency_code)
        return payment

    def get_payment(self, caller: Caller, payment_id: str = "", reference: str = "") -> Payment:
        caller.require(SCOPE_READ)
        with self.uow_factory() as uow:
            return self._visible_payment(uow, caller, payment_id, reference)

    def list_payments(self, caller: Caller, query: PaymentFilter, token: str, size: int,
                      ) -> tuple[list[Payment], str]:
        caller.require(SCOPE_READ)
        query = PaymentFilter(caller.agency_filter(query.agency_code or ""), query.dossier_code, query.status,
                              query.created_after, query.created_before)
        limit = page_size(size)
        after = decode_position(token)
        with self.uow_factory() as uow:
            rows = uow.payments.search(query, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        next_token = encode_token([rows[-1].created_at.isoformat(), rows[-1].id]) if more else ""
        return rows, next_token

    def channel_links(self, payment: Payment) -> list[tuple[str, str]]:
        """The payer-facing pages of the channels the agency allows (VietQR first)."""
        base = self.config.public_base_url.rstrip("/")
        links = [("vietqr", f"{base}/pay/{payment.reference}/qr.png")]
        agency = self.cached_agency(payment.agency_code)
        seen = {"vietqr"}
        for code in agency.allowed_connectors() if agency else []:
            connector = self.connectors.get(code)
            if connector is None or connector.info.channel in seen:
                continue
            seen.add(connector.info.channel)
            links.append((connector.info.channel, f"{base}/pay/{payment.reference}?channel={connector.info.channel}"))
        return links

    def cached_agency(self, code: str) -> Agency | None:
        """The agency as read at most AGENCY_CACHE_SECONDS ago (channel links, payment creation); only found
        agencies are cached, so a newly registered one is usable at once."""
        now = time.monotonic()
        with self._cache_lock:
            hit = self._agency_cache.get(code)
        if hit is not None and now - hit[0] < AGENCY_CACHE_SECONDS:
            return hit[1]
        with self.uow_factory() as uow:
            agency = uow.agencies.get(code)
        if agency is not None:
            with self._cache_lock:
                self._agency_cache[code] = (now, agency)
        return agency

    def _forget_agency(self, code: str) -> None:
        with self._cache_lock:
            self._agency_cache.pop(code, None)

    def qr_image_url(self, payment: Payment) -> str:
        return f"{self.config.public_base_url.rstrip('/')}/pay/{payment.reference}/qr.png"

    # -- routing: the payer picks a channel ---------------------------------------------------------------

    def route(self, agency: Agency, channel: str) -> list[str]:
        """Connectors of ``channel`` the agency allows, by priority, skipping those whose circuit is open."""
        chosen = []
        for code in agency.allowed_connectors():
            connector = self.connectors.get(code)
            if connector is None or (connector.info.channel != channel and code != channel):
                continue
            if self.availability.is_available(code):
                chosen.append(code)
        return chosen

    def start_channel(self, reference: str, channel: str) -> str:
        """Register the payment with the first available connector of ``channel`` (failing over to the next on
        an outage) and mark it PENDING; returns where to send the payer."""
        with self.uow_factory() as uow:
            payment = uow.payments.get_by_reference(reference.strip().upper())
            if payment is None:
                raise NotFound(f"no payment {reference!r}", reason="PAYMENT_NOT_FOUND")
            agency = self._agency(uow, payment.agency_code)
        if payment.status.value not in ("created", "pending"):
            raise FailedPrecondition(f"payment {payment.reference} is {payment.status.value}",
                                     reason="PAYMENT_CLOSED")
        candidates = self.route(agency, channel)
        if not candidates:
            raise Unavailable(f"no connector of channel {channel!r} is available for agency {agency.code}",
                              reason="NO_CONNECTOR_AVAILABLE")
        last_error: ConnectorError | None = None
        for code in candidates:
            connector = self.connectors.get(code)
            assert connector is not None
            try:
                result = connector.create(self._order(payment))
            except ConnectorError as error:
                last_error = error
                if error.counts_against_health:
                    continue
                raise FailedPrecondition(f"{code} refused the payment: {error}", reason="CONNECTOR_REJECTED") \
                    from None
            self._mark_pending(payment.reference, code, result.provider_reference)
            return result.redirect_url
        raise Unavailable(f"every connector of channel {channel!r} failed: {last_error}",
                          reason="NO_CONNECTOR_AVAILABLE")

    def _order(self, payment: Payment) -> PaymentOrder:
        return PaymentOrder(payment_id=payment.id, reference=payment.reference, amount=payment.amount,
                            description=to_ascii_note(f"{payment.reference} {payment.procedure_code}")[:99],
                            beneficiary_bin=payment.beneficiary.bank_bin,
                            beneficiary_account=payment.beneficiary.account, expires_at=payment.expires_at,
                            return_url=f"{self.config.public_base_url.rstrip('/')}/pay/{payment.reference}",
                            payer_name=payment.payer.name)

    # -- changing payments --------------------------------------------------------------------------------

    def _persist(self, uow: UnitOfWork, payment: Payment, agency: Agency | None = None) -> int:
        """Save the payment, its new events, their agency callbacks and (on success) the e-receipt, all in the
        caller's transaction; returns how many outbox rows were added."""
        events = list(payment.new_events)
        uow.payments.save(payment)
        payment.take_events()
        now = self.clock.now()
        added = 0
        for event in events:
            if not event.notifies_agency:
                continue
            uow.outbox.add(OutboxEntry(OutboxKind.AGENCY_CALLBACK, event.event_id, payment.id, payment.agency_code,
                                       callback_body(payment, event), now, now, event.occurred_at,
                                       now + self.config.retry_window))
            added += 1
            if event.type is EventType.SUCCEEDED:
                agency = agency or uow.agencies.get(payment.agency_code)
                if agency is not None:
                    receipt = signed_receipt(payment, agency, self.signer, now)
                    uow.receipts.add(payment.id, receipt.number, receipt.content, now)
                    uow.outbox.add(OutboxEntry(OutboxKind.RECEIPT, event.event_id, payment.id, payment.agency_code,
                                               _receipt_payload(receipt), now, now, event.occurred_at,
                                               now + self.config.retry_window))
                    added += 1
        return added

    def _mark_pending(self, reference: str, connector_code: str, checkout_reference: str) -> None:
        """The payer was sent to ``connector_code``, whose create answered ``checkout_reference``: lock, move to
        PENDING (keeping the reference for status queries), persist, commit."""
        with self.uow_factory() as uow:
            payment = uow.payments.get_by_reference(reference, lock=True)
            if payment is None:
                raise NotFound(f"no payment {reference!r}", reason="PAYMENT_NOT_FOUND")
            if payment.status.value in ("created", "pending"):
                payment.mark_pending(connector_code, EventSource.API, self.clock.now(), checkout_reference)
            added = self._persist(uow, payment)
            uow.commit()
        if added:
            self.notifier.notify()

    def cancel_payment(self, caller: Caller, payment_id: str, reason: str) -> Payment:
        caller.require(SCOPE_CREATE)
        with self.uow_factory() as uow:
            payment = self._visible_payment(uow, caller, payment_id, lock=True)
            payment.cancel(self.clock.now(), reason[:200])
            self._persist(uow, payment)
            uow.commit()
        self.notifier.notify()
        return payment

    def refund_payment(self, caller: Caller, payment_id: str, amount: int, idempotency_key: str,
                       reason: str) -> tuple[Payment, Refund]:
        """Refund through the payment's connector, idempotent per (payment, key). The payment's row lock is held
        across the counterpart call (at most its 10 s timeout) so two refunds can never together exceed what was
        paid; refunds are rare, so the wait costs nothing elsewhere."""
        caller.require(SCOPE_CREATE)
        if not idempotency_key or len(idempotency_key) > 128:
            raise InvalidArgument.single("idempotency_key", "is required: 1-128 characters, the same on every retry")
        if amount < 0:
            raise InvalidArgument.single("amount", "must not be negative")
        with self.uow_factory() as uow:
            payment = self._visible_payment(uow, caller, payment_id, lock=True)
            previous = uow.refunds.get(payment.id, idempotency_key)
            if previous is not None:
                return payment, previous
            amount = amount or payment.refundable_amount
            # The same id on every retry of this request: a refund the counterpart made but whose answer was lost
            # (a timeout rolls this transaction back) is answered again by the counterpart, not paid twice.
            refund_id = uuid.uuid5(REFUND_NAMESPACE, f"{payment.id}/{idempotency_key}").hex
            now = self.clock.now()
            # The state machine decides before the bank is asked to move any money.
            payment.refund(amount, refund_id, now)
            connector = self.connectors.get(payment.connector_code)
            if connector is None or not connector.info.supports_refund:
                raise FailedPrecondition(f"connector {payment.connector_code or '(none)'} cannot refund; refund by "
                                         "bank transfer and record it through reconciliation",
                                         reason="REFUND_NOT_SUPPORTED")
            try:
                answer = connector.refund(payment.reference, payment.provider_reference, amount, refund_id,
                                          created_at=payment.created_at)
            except ConnectorError as error:
                raise Unavailable(f"{connector.info.code} did not refund: {error}",
                                  reason="CONNECTOR_ERROR") from None
            if not answer.accepted:
                raise FailedPrecondition(f"{connector.info.code} refused the refund: {answer.message}",
                                         reason="REFUND_REJECTED", metadata={"provider_code": answer.provider_code})
            refund = Refund(refund_id, payment.id, idempotency_key, amount, answer.provider_reference, now)
            uow.refunds.add(refund)
            self._persist(uow, payment)
            uow.commit()
        self.notifier.notify()
        return payment, refund

    # -- connector notifications, status sweeps, expiry ---------------------------------------------------

    def handle_notification(self, connector_code: str, notification: InboundNotification) -> CallbackOutcome:
        """A verified callback: idempotent per notification id, amount-checked, credits matched on the
        reference in the transfer note; unmatched credits go to the review queue."""
        if notification.kind is NotificationKind.REFUND_RESULT:
            return self._apply_refund_result(connector_code, notification)
        credit = notification.kind is NotificationKind.ACCOUNT_CREDITED
        reference = notification.reference.strip().upper()
        if credit and not references.is_valid(reference):
            found, seen = references.find_in_note(notification.transfer_note)
            if found is None:
                return self._review(connector_code, notification, "garbled_reference" if seen
                                    else "missing_reference", CallbackOutcome.ACCEPTED)
            reference = found
        outcome = self._apply_notification(connector_code, notification, reference, credit)
        if outcome is CallbackOutcome.UNKNOWN_REFERENCE and credit:
            # Money arrived for a reference we never issued: a person must find where it belongs.
            self._review(connector_code, notification, "unknown_reference", outcome)
        return outcome

    def _apply_notification(self, connector_code: str, notification: InboundNotification, reference: str,
                            credit: bool) -> CallbackOutcome:
        now = self.clock.now()
        with self.uow_factory() as uow:
            payment = uow.payments.get_by_reference(reference, lock=True)
            if payment is None:
                return CallbackOutcome.UNKNOWN_REFERENCE
            if notification.notification_id and uow.notifications.seen(connector_code, notification.notification_id):
                return CallbackOutcome.DUPLICATE
            if credit and not payment.receives_into(notification.credited_account):
                # The note names this payment but the money reached another account (another agency's): it
                # pays nothing here, and a person must find where it belongs.
                self._hold(uow, connector_code, notification, "wrong_account", payment)
                uow.commit()
                return CallbackOutcome.ACCEPTED
            agency = uow.agencies.get(payment.agency_code)
            if not credit and agency is not None and connector_code not in agency.allowed_connectors() \
                    and connector_code != payment.connector_code:
                log.warning("callback from a connector the payment's agency does not use",
                            extra={"connector": connector_code, "agency": payment.agency_code})
                return CallbackOutcome.REJECTED
            outcome = self._apply_status(uow, payment, connector_code, notification.status, notification.amount,
                                         notification.provider_reference, EventSource.CALLBACK, credit=credit)
            if outcome is CallbackOutcome.AMOUNT_MISMATCH:
                # Not recorded as seen: the counterpart may resend a corrected notice under the same id.
                uow.reviews.add(self._review_item(connector_code, notification, "amount_mismatch", payment))
                uow.commit()
                return outcome
            if notification.notification_id:
                uow.notifications.record(connector_code, notification.notification_id, payment.id, outcome.value,
                                         now)
            if FLAG_OVERPAID in payment.flags and payment.new_events:
                uow.reviews.add(self._review_item(connector_code, notification, "overpayment", payment))
            added = self._persist(uow, payment, agency)
            uow.commit()
        if added:
            self.notifier.notify()
        return outcome

    def _apply_refund_result(self, connector_code: str, notification: InboundNotification) -> CallbackOutcome:
        """How a refund the counterpart accepted ended. A failure gives the amount back to what is refundable,
        flags the payment and queues it for a person: the payer has not been repaid."""
        with self.uow_factory() as uow:
            payment = uow.payments.get_by_reference(notification.reference.strip().upper(), lock=True)
            refund = uow.refunds.by_id(notification.refund_id) if notification.refund_id else None
            if payment is None or (refund is not None and refund.payment_id != payment.id):
                log.warning("refund result for no refund of ours", extra={
                    "connector": connector_code, "reference": notification.reference[:40]})
                return CallbackOutcome.UNKNOWN_REFERENCE
            if notification.notification_id and uow.notifications.seen(connector_code, notification.notification_id):
                return CallbackOutcome.DUPLICATE
            if refund is None:
                # Our payment, a refund we hold no record of: its answer was lost (the call timed out and rolled
                # back), so money may have moved. A person must see it, not a log line.
                self._hold(uow, connector_code, notification, "unknown_refund", payment)
                uow.commit()
                return CallbackOutcome.ACCEPTED
            outcome = CallbackOutcome.ACCEPTED
            if refund.status != "accepted" or notification.status is ConnectorStatus.PENDING:
                outcome = CallbackOutcome.DUPLICATE   # already final, or nothing final to say yet
            elif notification.status is ConnectorStatus.SUCCEEDED:
                uow.refunds.set_status(refund.id, "succeeded")
            elif notification.status in (ConnectorStatus.FAILED, ConnectorStatus.CANCELLED):
                uow.refunds.set_status(refund.id, "failed")
                payment.refund_failed(refund.amount, refund.id, self.clock.now(), EventSource.CALLBACK)
                uow.reviews.add(self._review_item(connector_code, notification, "refund_failed", payment))
            else:
                return CallbackOutcome.REJECTED
            if notification.notification_id:
                uow.notifications.record(connector_code, notification.notification_id, payment.id, outcome.value,
                                         self.clock.now())
            added = self._persist(uow, payment)
            uow.commit()
        if added:
            self.notifier.notify()
        return outcome

    def _apply_status(self, uow: UnitOfWork, payment: Payment, connector_code: str, status: ConnectorStatus,
                      amount: int | None, provider_reference: str, source: EventSource, *,
                      credit: bool = False) -> CallbackOutcome:
        now = self.clock.now()
        if status is ConnectorStatus.SUCCEEDED:
            # A status answer without an amount is taken as the full amount the counterpart was asked for.
            paid = payment.amount if amount is None else amount
            if credit:
                result = payment.record_credit(paid, connector_code, provider_reference, source, now)
            else:
                result = payment.record_success(paid, connector_code, provider_reference, source, now)
            return {CreditResult.DUPLICATE: CallbackOutcome.DUPLICATE,
                    CreditResult.AMOUNT_MISMATCH: CallbackOutcome.AMOUNT_MISMATCH}.get(result, CallbackOutcome.ACCEPTED)
        if status in (ConnectorStatus.FAILED, ConnectorStatus.CANCELLED):
            changed = payment.fail(source, now, f"{connector_code} reported {status.value}")
            return CallbackOutcome.ACCEPTED if changed else CallbackOutcome.DUPLICATE
        if status is ConnectorStatus.PENDING:
            if payment.status.value == "created":
                payment.mark_pending(connector_code, source, now)
                return CallbackOutcome.ACCEPTED
            return CallbackOutcome.DUPLICATE
        return CallbackOutcome.REJECTED

    def _review_item(self, connector_code: str, notification: InboundNotification, reason: str,
                     payment: Payment | None = None) -> ReviewItem:
        return ReviewItem(uuid.uuid4().hex, connector_code, notification.notification_id, notification.amount,
                          notification.transfer_note[:500], notification.provider_reference, reason,
                          self.clock.now(), payment.id if payment else "", payment.agency_code if payment else "")

    def _review_status_answer(self, uow: UnitOfWork, payment: Payment, connector_code: str,
                              result: ConnectorResult, outcome: CallbackOutcome) -> None:
        """Queue a status answer for a person, once: the sweep asks again and gets the same answer."""
        answer = f"{payment.reference}|{result.status.value}|{result.amount}|{result.provider_reference}"
        marker = "status-query:" + hashlib.sha256(answer.encode()).hexdigest()[:40]
        if uow.notifications.seen(connector_code, marker):
            return
        as_notice = InboundNotification(NotificationKind.PAYMENT_RESULT, payment.reference, result.status,
                                        result.amount or 0, result.provider_reference[:64], marker,
                                        transfer_note=result.message)
        reason = "amount_mismatch" if outcome is CallbackOutcome.AMOUNT_MISMATCH else "overpayment"
        self._hold(uow, connector_code, as_notice, reason, payment)

    def _hold(self, uow: UnitOfWork, connector_code: str, notification: InboundNotification, reason: str,
              payment: Payment | None = None) -> None:
        """Queue a notice for a person, and record it as seen so the counterpart's retries do not queue it again."""
        if notification.notification_id:
            uow.notifications.record(connector_code, notification.notification_id, payment.id if payment else "",
                                     reason, self.clock.now())
        uow.reviews.add(self._review_item(connector_code, notification, reason, payment))

    def _review(self, connector_code: str, notification: InboundNotification, reason: str,
                outcome: CallbackOutcome) -> CallbackOutcome:
        with self.uow_factory() as uow:
            if notification.notification_id and uow.notifications.seen(connector_code, notification.notification_id):
                return CallbackOutcome.DUPLICATE
            self._hold(uow, connector_code, notification, reason)
            try:
                uow.commit()
            except DuplicateKey:
                return CallbackOutcome.DUPLICATE
        log.warning("credit held for review", extra={"connector": connector_code, "reason": reason})
        return outcome

    def apply_status_result(self, payment: Payment, connector_code: str, result: ConnectorResult,
                            source: EventSource) -> CallbackOutcome:
        """Apply what a status query learned, under the payment's row lock. A transfer-paid account's credits
        are applied one by one, so those a notice already brought are recognised; an amount the payment cannot
        take goes to the review queue once per answer, as a notice's would."""
        with self.uow_factory() as uow:
            locked = uow.payments.get(payment.id, lock=True)
            if locked is None:
                return CallbackOutcome.UNKNOWN_REFERENCE
            # A credit to another account is not this payment's money; its notice holds it for review.
            credits = [credit for credit in result.credits if locked.receives_into(credit.account)]
            if result.credits:
                outcome = _combined([self._apply_status(uow, locked, connector_code, ConnectorStatus.SUCCEEDED,
                                                        credit.amount, credit.provider_reference, source, credit=True)
                                     for credit in credits])
            else:
                outcome = self._apply_status(uow, locked, connector_code, result.status, result.amount,
                                             result.provider_reference, source)
            if outcome is CallbackOutcome.AMOUNT_MISMATCH or (FLAG_OVERPAID in locked.flags and locked.new_events):
                self._review_status_answer(uow, locked, connector_code, result, outcome)
            added = self._persist(uow, locked)
            uow.commit()
        if added:
            self.notifier.notify()
        return outcome

    def refresh_status(self, connector_code: str, reference: str) -> CallbackOutcome:
        """Query one payment's status now (a pull-only provider's payer came back) and apply the answer."""
        with self.uow_factory() as uow:
            payment = uow.payments.get_by_reference(reference.strip().upper())
        connector = self.connectors.get(connector_code)
        if payment is None:
            return CallbackOutcome.UNKNOWN_REFERENCE
        if connector is None:
            return CallbackOutcome.REJECTED
        try:
            result = query_status(connector, payment)
        except ConnectorError:
            return CallbackOutcome.ERROR
        if not _news(result) and payment.status.value != "created":
            return CallbackOutcome.DUPLICATE
        return self.apply_status_result(payment, connector_code, result, EventSource.STATUS_QUERY)

    def sweep_pending(self, limit: int = 50) -> int:
        """Ask connectors about PENDING payments whose callback never came; returns how many changed."""
        now = self.clock.now()
        with self.uow_factory() as uow:
            claimed = uow.payments.claim_for_status_check(now, now - self.config.status_check_after, limit)
            uow.commit()
        changed = 0
        for payment in claimed:
            connector = self.connectors.get(payment.connector_code)
            if connector is None or not self.availability.is_available(payment.connector_code):
                continue
            try:
                result = query_status(connector, payment)
            except ConnectorError as error:
                log.info("status query failed", extra={"connector": payment.connector_code, "error": str(error)})
                continue
            if not _news(result):
                continue
            if self.apply_status_result(payment, payment.connector_code, result,
                                        EventSource.STATUS_QUERY) is CallbackOutcome.ACCEPTED:
                changed += 1
        return changed

    def expire_due(self, limit: int = 100) -> int:
        """Expire open payments past their expiry; returns how many. A payment waiting at a reachable
        connector is asked about first, outside the row lock: a payer who paid in the last seconds before the
        deadline gets a success, not an expiry followed by a late success and a refund."""
        now = self.clock.now()
        with self.uow_factory() as uow:
            due = uow.payments.claim_expired(now, limit)
            ask_first = [(payment, connector) for payment in due
                         if (connector := self._connector_to_ask(payment)) is not None]
            asked = {payment.id for payment, _ in ask_first}
            for payment in due:
                if payment.id not in asked:
                    payment.expire(now)
                    self._persist(uow, payment)
            uow.commit()
        expired = len(due) - len(ask_first)
        for payment, connector in ask_first:
            expired += self._expire_unless_paid(payment, connector, now)
        if expired:
            self.notifier.notify()
        return expired

    def _connector_to_ask(self, payment: Payment) -> Connector | None:
        if payment.status is not PaymentStatus.PENDING or not payment.connector_code:
            return None
        if not self.availability.is_available(payment.connector_code):
            return None  # an open circuit: asking would only wait for the timeout
        return self.connectors.get(payment.connector_code)

    def _expire_unless_paid(self, payment: Payment, connector: Connector, now: datetime) -> int:
        """Apply the connector's final answer if it has one; expire the payment if it is then still open."""
        try:
            result = query_status(connector, payment)
        except ConnectorError as error:
            log.info("status query before expiry failed; expiring", extra={
                "connector": payment.connector_code, "reference": payment.reference, "error": str(error)})
        else:
            if _news(result):
                self.apply_status_result(payment, payment.connector_code, result, EventSource.STATUS_QUERY)
        with self.uow_factory() as uow:
            locked = uow.payments.get(payment.id, lock=True)
            if locked is None or locked.status not in OPEN_STATUSES or locked.expires_at > now:
                return 0  # paid, failed, or expired by another replica meanwhile
            locked.expire(now)
            self._persist(uow, locked)
            uow.commit()
        return 1

    # -- events -------------------------------------------------------------------------------------------

    def list_events(self, caller: Caller, payment_id: str, delivery: Any, token: str, size: int,
                    ) -> tuple[list[EventView], str]:
        caller.require(SCOPE_READ)
        limit = page_size(size)
        after = decode_offset(token)
        with self.uow_factory() as uow:
            agency = caller.agency_filter()
            if payment_id:
                self._visible_payment(uow, caller, payment_id)
            views = uow.events.search(agency, payment_id, delivery, after, limit + 1)
        more = len(views) > limit
        views = views[:limit]
        return views, encode_token(views[-1].cursor) if more else ""

    def redeliver_event(self, caller: Caller, event_id: str) -> EventView:
        caller.require(SCOPE_READ)
        now = self.clock.now()
        with self.uow_factory() as uow:
            view = uow.events.get(event_id)
            if view is None:
                raise NotFound(f"no event {event_id!r}", reason="EVENT_NOT_FOUND")
            caller.check_agency(view.event.agency_code)
            if not view.event.notifies_agency:
                raise FailedPrecondition("payment.created events are not sent to the agency",
                                         reason="EVENT_NOT_DELIVERABLE")
            uow.outbox.reschedule(OutboxKind.AGENCY_CALLBACK, event_id, now, now + self.config.retry_window)
            # The payer's e-receipt rides on the same event: one given up on (a wallet outage longer than the
            # retry window) is tried again too. The wallet keys receipts on their number, so none is doubled.
            uow.outbox.reschedule(OutboxKind.RECEIPT, event_id, now, now + self.config.retry_window, only_dead=True)
            uow.commit()
            refreshed = uow.events.get(event_id)
        self.notifier.notify()
        assert refreshed is not None
        return refreshed

    def events_after(self, agency_code: str | None, cursor: int, limit: int = 100) -> list[EventView]:
        with self.uow_factory() as uow:
            return uow.events.search(agency_code, "", None, cursor, limit)

    def latest_cursor(self, agency_code: str | None) -> int:
        with self.uow_factory() as uow:
            return uow.events.latest_cursor(agency_code)

    # -- agencies -----------------------------------------------------------------------------------------

    def register_agency(self, caller: Caller, agency: Agency, idempotency_key: str) -> tuple[Agency, str, str]:
        """Register a tenant; returns it with its first callback secret (shown once)."""
        caller.require_admin()
        _validate_agency(agency)
        now = self.clock.now()
        secret_value = secrets.token_hex(32)
        first = _new_secret(secret_value, now)
        agency.created_at = agency.updated_at = now
        agency.secrets = [first]
        with self.uow_factory() as uow:
            existing = uow.agencies.get(agency.code)
            if existing is not None:
                raise Conflict(f"agency {agency.code!r} is already registered; use UpdateAgency",
                               reason="AGENCY_EXISTS")
            try:
                uow.agencies.add(agency, idempotency_key)
                uow.commit()
            except DuplicateKey:
                raise Conflict(f"agency {agency.code!r} is already registered", reason="AGENCY_EXISTS") from None
        return agency, secret_value, first.secret_id

    def update_agency(self, caller: Caller, changes: Agency, fields: set[str]) -> Agency:
        caller.require_admin()
        unknown = fields - {"name", "callback_url", "accounts", "channels"}
        if unknown or not fields:
            raise InvalidArgument.single("update_mask", "name the fields to change: name, callback_url, accounts, "
                                                        "channels")
        with self.uow_factory() as uow:
            agency = self._agency(uow, changes.code)
            for name in fields:
                setattr(agency, name, getattr(changes, name))
            _validate_agency(agency)
            agency.updated_at = self.clock.now()
            uow.agencies.update(agency)
            uow.commit()
        self._forget_agency(agency.code)
        return agency

    def rotate_callback_secret(self, caller: Caller, code: str, previous_ttl_seconds: int,
                               ) -> tuple[str, str, datetime]:
        """A new secret; previous secrets keep signing (two v1 entries) until the TTL ends."""
        caller.require_admin()
        ttl = timedelta(seconds=previous_ttl_seconds) if previous_ttl_seconds else self.config.previous_secret_ttl
        if ttl.total_seconds() < 0 or ttl > self.config.max_previous_secret_ttl:
            raise InvalidArgument.single("previous_secret_ttl_seconds", "must be between 0 and "
                                         f"{int(self.config.max_previous_secret_ttl.total_seconds())}")
        now = self.clock.now()
        value = secrets.token_hex(32)
        fresh = _new_secret(value, now)
        with self.uow_factory() as uow:
            agency = self._agency(uow, code)
            for old in agency.active_secrets(now):
                if old.expires_at is None or old.expires_at > now + ttl:
                    uow.agencies.expire_secret(old.secret_id, now + ttl)
            uow.agencies.add_secret(code, fresh)
            uow.commit()
        self._forget_agency(code)
        return value, fresh.secret_id, now + ttl

    def agency(self, caller: Caller, code: str) -> Agency:
        caller.check_agency(code)
        with self.uow_factory() as uow:
            return self._agency(uow, code)

    # -- review queue -------------------------------------------------------------------------------------

    def list_review_items(self, caller: Caller, include_resolved: bool, token: str, size: int,
                          ) -> tuple[list[ReviewItem], str]:
        caller.require_admin()
        limit = page_size(size)
        after = decode_position(token)
        with self.uow_factory() as uow:
            items = uow.reviews.search(include_resolved, after, limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return items, encode_token([items[-1].created_at.isoformat(), items[-1].id]) if more else ""

    def resolve_review_item(self, caller: Caller, item_id: str, resolution: str) -> ReviewItem:
        """Close a review item with what was done about it; repeating the same resolution is a no-op."""
        caller.require_admin()
        resolution = resolution.strip()
        if not resolution or len(resolution) > 500:
            raise InvalidArgument.single("resolution", "say what was done (1-500 characters): refunded, matched by "
                                                       "hand to a payment, returned by the bank...")
        with self.uow_factory() as uow:
            item = uow.reviews.get(item_id, lock=True)
            if item is None:
                raise NotFound(f"no review item {item_id!r}", reason="REVIEW_ITEM_NOT_FOUND")
            if item.resolved_at is not None:
                if item.resolution == resolution:
                    return item
                raise FailedPrecondition(f"review item {item_id!r} was already resolved by {item.resolved_by}: "
                                         f"{item.resolution}", reason="REVIEW_ITEM_RESOLVED",
                                         metadata={"resolved_by": item.resolved_by})
            now = self.clock.now()
            uow.reviews.resolve(item_id, now, caller.subject, resolution)
            uow.commit()
        return dataclasses.replace(item, resolved_at=now, resolved_by=caller.subject, resolution=resolution)

    def connector_health(self) -> list[ConnectorHealthView]:
        """Each configured connector's static facts, whether its circuit lets calls through, and the breaker's
        counters when the registry keeps them."""
        breakers = {h.code: h for h in getattr(self.connectors, "health", lambda: [])()}
        views = []
        for code in self.connectors.codes():
            connector = self.connectors.get(code)
            if connector is None:
                continue
            health = breakers.get(code)
            views.append(ConnectorHealthView(
                connector.info, self.availability.is_available(code),
                str(getattr(getattr(health, "state", None), "value", "")) if health else "",
                int(getattr(health, "consecutive_failures", 0)) if health else 0,
                str(getattr(health, "last_error_kind", "")) if health else "",
                getattr(health, "last_success_at", None) if health else None))
        return views


def query_status(connector: Connector, payment: Payment) -> ConnectorResult:
    """Ask ``connector`` about ``payment`` with everything a counterpart may need to find it."""
    return connector.query_status(payment.reference, amount=payment.amount, created_at=payment.created_at,
                                  provider_reference=payment.checkout_reference)


def signed_receipt(payment: Payment, agency: Agency, signer: ReceiptSigner, now: datetime) -> SignedReceipt:
    """The receipt as a signed XML document: its fields, the signed canonical JSON and the signature by the
    platform's receipt key."""
    document = receipt_document(payment, agency, now)
    signature = base64.urlsafe_b64encode(signer.sign(canonical_json(document))).decode().rstrip("=")
    content = receipt_xml(document, signature, signer.algorithm, signer.key_id)
    return SignedReceipt(number=document["number"], payer_national_id=payment.payer.national_id,
                         payment_id=payment.id, content=content, content_type=CONTENT_TYPE, signature=signature,
                         algorithm=signer.algorithm, key_id=signer.key_id)


def _receipt_payload(receipt: SignedReceipt) -> str:
    return json.dumps({"number": receipt.number, "payer_national_id": receipt.payer_national_id,
                       "payment_id": receipt.payment_id, "content": receipt.content.decode(),
                       "content_type": receipt.content_type, "signature": receipt.signature,
                       "algorithm": receipt.algorithm, "key_id": receipt.key_id}, ensure_ascii=False)


def receipt_from_payload(payload: str) -> SignedReceipt:
    data = json.loads(payload)
    return SignedReceipt(number=data["number"], payer_national_id=data["payer_national_id"],
                         payment_id=data["payment_id"], content=data["content"].encode(),
                         content_type=data["content_type"], signature=data["signature"],
                         algorithm=data["algorithm"], key_id=data["key_id"])


def _new_secret(value: str, now: datetime) -> CallbackSecret:
    return CallbackSecret(secret_id=uuid.uuid4().hex[:16], secret=value, created_at=now)


def _validate_agency(agency: Agency) -> None:
    collector = ViolationCollector()
    if not re.fullmatch(r"[A-Za-z0-9._-]{2,32}", agency.code or ""):
        collector.add("code", "must be 2-32 letters, digits, '.', '_' or '-'")
    check_text(collector, "name", agency.name, 200, required=True)   # it is printed on every signed receipt
    if not re.fullmatch(r"https?://[^\s]{1,490}", agency.callback_url or ""):
        collector.add("callback_url", "must be an http(s) URL")
    if not agency.accounts:
        collector.add("accounts", "at least one beneficiary account is required")
    for index, account in enumerate(agency.accounts):
        if not re.fullmatch(r"[0-9]{6}", account.bank_bin):
            collector.add(f"accounts[{index}].bank_bin", "must be the bank's 6-digit BIN")
        if not re.fullmatch(r"[A-Za-z0-9]{1,19}", account.account):
            collector.add(f"accounts[{index}].account", "must be 1-19 letters or digits")
    for index, channel in enumerate(agency.channels):
        if not channel.connector_code:
            collector.add(f"channels[{index}].connector_code", "is required")
        if channel.priority < 1:
            collector.add(f"channels[{index}].priority", "must be 1 or more")
    collector.raise_if_any("the agency has invalid fields")


def _combined(outcomes: list[CallbackOutcome]) -> CallbackOutcome:
    """One outcome for several credits applied together: a mismatch needs a person, any new money is news."""
    for worst in (CallbackOutcome.AMOUNT_MISMATCH, CallbackOutcome.ACCEPTED):
        if worst in outcomes:
            return worst
    return CallbackOutcome.DUPLICATE


def _news(result: ConnectorResult) -> bool:
    """Whether a status answer may change the payment: a final status, or credits (a partial payment's too)."""
    return result.status not in (ConnectorStatus.PENDING, ConnectorStatus.UNKNOWN) or bool(result.credits)
