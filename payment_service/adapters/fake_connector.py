"""An in-memory, test-mode connector implementing the Connector interface (tests, and wiring before real ones)."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackReply,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorInfo,
    ConnectorResult,
    ConnectorStatus,
    InboundNotification,
    NotificationKind,
    PaymentOrder,
    RefundResult,
    SettlementLine,
)
from servicekit.logs import scrub

SIGNATURE_HEADER = "x-fake-signature"


@dataclass
class _Charge:
    order: PaymentOrder
    status: ConnectorStatus = ConnectorStatus.PENDING
    amount: int = 0
    provider_reference: str = ""
    paid_at: datetime | None = None


@dataclass(frozen=True)
class StatusQuery:
    """One ``query_status`` call as the fake received it."""

    reference: str
    amount: int
    created_at: datetime
    provider_reference: str


@dataclass(frozen=True)
class RefundRequest:
    """One ``refund`` call as the fake received it."""

    reference: str
    provider_reference: str
    amount: int
    refund_id: str
    created_at: datetime | None


@dataclass
class FakeConnector:
    """Behaves like a well-mannered provider: remembers orders, answers status queries from what a test set with
    ``settle``, verifies HMAC-SHA256 signed JSON callbacks, parses ``reference,provider_reference,amount,status,
    settled_on`` CSV settlement files. ``fail_with`` makes every outbound call fail with that kind."""

    info: ConnectorInfo = field(default_factory=lambda: ConnectorInfo("fake", "Fake bank", "bank"))
    secret: str = "fake-secret"
    fail_with: ConnectorErrorKind | None = None
    settlements: dict[date, list[SettlementLine]] = field(default_factory=dict)
    charges: dict[str, _Charge] = field(default_factory=dict)
    refunds: list[tuple[str, int, str]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    # What the core passed beyond the reference, so tests can check it hands connectors what they need.
    status_queries: list[StatusQuery] = field(default_factory=list)
    refund_requests: list[RefundRequest] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _call(self, name: str) -> None:
        with self._lock:
            self.calls.append(name)
        if self.fail_with is not None:
            raise ConnectorError(self.fail_with, f"{self.info.code} {name} failed ({self.fail_with.value})")

    def check_credentials(self) -> None:
        if not self.secret:
            raise ConnectorError(ConnectorErrorKind.CONFIGURATION, f"{self.info.code}: no secret configured")

    def create(self, order: PaymentOrder) -> ConnectorResult:
        self._call("create")
        with self._lock:
            charge = self.charges.setdefault(order.reference, _Charge(order, amount=order.amount,
                                                                      provider_reference=uuid.uuid4().hex[:12]))
        return ConnectorResult(ConnectorStatus.PENDING, charge.provider_reference, order.amount,
                               redirect_url=f"https://{self.info.code}.fake.test/pay/{order.reference}")

    def settle(self, reference: str, status: ConnectorStatus, amount: int | None = None,
               paid_at: datetime | None = None) -> None:
        """What the counterpart will answer about ``reference`` from now on (test control)."""
        with self._lock:
            charge = self.charges[reference]
            charge.status = status
            charge.amount = charge.order.amount if amount is None else amount
            charge.paid_at = paid_at

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        self._call("query_status")
        with self._lock:
            self.status_queries.append(StatusQuery(reference, amount, created_at, provider_reference))
            charge = self.charges.get(reference)
        if charge is None:
            return ConnectorResult(ConnectorStatus.UNKNOWN)
        return ConnectorResult(charge.status, charge.provider_reference, charge.amount, paid_at=charge.paid_at)

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        self._call("refund")
        with self._lock:
            self.refund_requests.append(RefundRequest(reference, provider_reference, amount, refund_id, created_at))
            self.refunds.append((reference, amount, refund_id))
        return RefundResult(True, provider_reference=f"rf-{refund_id[:8]}")

    def sign(self, body: bytes) -> str:
        return hmac.new(self.secret.encode(), body, hashlib.sha256).hexdigest()

    def callback_request(self, payload: dict[str, object], *, signature: str | None = None) -> CallbackRequest:
        """A signed callback as the counterpart would send it (test helper)."""
        body = json.dumps(payload).encode()
        return CallbackRequest("POST", {}, {SIGNATURE_HEADER: signature or self.sign(body)}, body)

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        headers = {key.lower(): value for key, value in request.headers.items()}
        if not hmac.compare_digest(headers.get(SIGNATURE_HEADER, ""), self.sign(request.body)):
            raise ConnectorError(ConnectorErrorKind.BAD_SIGNATURE, "signature does not verify")
        try:
            data = json.loads(request.body)
            return InboundNotification(
                kind=NotificationKind(data.get("kind", NotificationKind.PAYMENT_RESULT.value)),
                reference=str(data.get("reference", "")), status=ConnectorStatus(data["status"]),
                amount=int(data["amount"]), provider_reference=str(data.get("provider_reference", "")),
                notification_id=str(data["notification_id"]), transfer_note=str(data.get("transfer_note", "")))
        except (KeyError, ValueError, TypeError) as exc:
            raise ConnectorError(ConnectorErrorKind.PROTOCOL, f"malformed callback: {exc}") from None

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        status = 200 if outcome in (CallbackOutcome.ACCEPTED, CallbackOutcome.DUPLICATE) else 400
        return CallbackReply(status, json.dumps({"result": outcome.value}).encode())

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        self._call("fetch_settlement")
        return list(self.settlements.get(day, []))

    def parse_settlement(self, content: bytes) -> list[SettlementLine]:
        try:
            rows = list(csv.reader(io.StringIO(content.decode())))
            return [SettlementLine(row[0], row[1], int(row[2]), ConnectorStatus(row[3]), date.fromisoformat(row[4]))
                    for row in rows if row and row[0] != "reference"]
        except (IndexError, ValueError, UnicodeDecodeError) as exc:
            raise ConnectorError(ConnectorErrorKind.PROTOCOL, f"bad settlement file: {exc}") from None

    def scrub(self, text: str) -> str:
        return scrub(text.replace(self.secret, "[secret]"))


class FakeConnectors:
    """A connector lookup over plain connectors with a switchable availability (stands in for the registry and
    its circuit breakers in tests)."""

    def __init__(self, *connectors: FakeConnector) -> None:
        self._connectors = {connector.info.code: connector for connector in connectors}
        self.down: set[str] = set()

    def get(self, code: str) -> FakeConnector | None:
        return self._connectors.get(code)

    def codes(self) -> list[str]:
        return list(self._connectors)

    def is_available(self, code: str) -> bool:
        return code in self._connectors and code not in self.down
