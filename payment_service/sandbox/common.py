"""What every sandbox shares: the payment book, per-payment behaviour from magic amounts, settings, fault
injection, the delayed callback sender, settlement lines with injected faults, and the payer/admin routes."""

from __future__ import annotations

import dataclasses
import enum
import heapq
import html
import itertools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Protocol

import requests
from flask import Blueprint, Flask, Response, request

from payment_service.domain.connector import ConnectorStatus as Status
from payment_service.domain.connector import SettlementLine

log = logging.getLogger("dvc.sandbox")
VIETNAM = timezone(timedelta(hours=7), "ICT")
MAGIC_DELTA = 1_000  # đồng by which magic under- and over-payments differ from the asked amount


class Action(enum.Enum):
    """What the simulated payer does."""

    PAY = "pay"
    FAIL = "fail"
    ABANDON = "abandon"


@dataclass(frozen=True)
class Magic:
    """One test-mode behaviour chosen by the last two digits of the amount (documented in docs/sandboxes.md)."""

    code: int
    name: str
    description: str


MAGIC: dict[int, Magic] = {magic.code: magic for magic in (
    Magic(13, "fail", "the payer's payment fails (a FAILED result is notified)"),
    Magic(24, "abandon", "the payer abandons (a CANCELLED result is notified)"),
    Magic(31, "lost", "paid, but the callback is lost: only a status query finds out"),
    Magic(42, "slow", "paid, the callback comes after `slow_callback_seconds` (default 3 s)"),
    Magic(55, "underpaid", "the payer pays 1,000 đồng less than asked"),
    Magic(56, "overpaid", "the payer pays 1,000 đồng more than asked"),
    Magic(61, "note_missing", "VietQR only: the bank delivers the transfer with an empty note"),
    Magic(62, "note_truncated", "VietQR only: the bank cuts the note inside the payment reference"),
    Magic(63, "note_garbled", "VietQR only: lowercase, diacritics, a bank prefix and spaces inside the reference "
                              "(still recoverable)"),
    Magic(66, "forged_first", "a callback with a bad signature comes first, then the genuine one"),
    Magic(77, "duplicate", "the callback is delivered twice"),
    Magic(88, "reordered", "a failed first attempt and a successful second one; the success is notified first "
                           "and the stale failure after it"),
    Magic(93, "status_timeout", "status queries and refunds for this payment hang longer than any timeout"),
    Magic(95, "status_error", "status queries and refunds for this payment answer HTTP 503"),
    Magic(97, "settlement_missing", "paid, but left out of the daily settlement file"),
    Magic(98, "settlement_mismatch", "paid, but the settlement file shows 1,000 đồng more"),
)}


def magic_for(amount: int) -> Magic | None:
    return MAGIC.get(amount % 100)


@dataclass
class SandboxSettings:
    """Sandbox-wide misbehaviour, changeable at run time with POST /sandbox/settings."""

    callback_delay_seconds: float = 0.0      # every callback waits this long
    slow_callback_seconds: float = 3.0       # magic 42
    duplicate_rate: float = 0.0              # share of payments whose callback is sent twice
    loss_rate: float = 0.0                   # share of payments whose callback is lost
    reorder_rate: float = 0.0                # share of paid payments that get the magic-88 treatment
    forged_rate: float = 0.0                 # share of payments that get a forged callback first
    api_mode: str = "normal"                 # normal | timeout | error: how API calls (create, status...) answer
    api_fault_count: int = 0                 # with api_mode: how many calls misbehave (0 = all until changed)
    api_timeout_seconds: float = 12.0        # how long a "timeout" call hangs (beyond the 10 s connector limit)
    max_attempts: int = 3                    # callback deliveries until acknowledged
    retry_backoff_seconds: float = 1.0       # doubled after each unacknowledged attempt
    delivery_timeout_seconds: float = 5.0
    settlement_missing: list[str] = field(default_factory=list)      # references left out of settlement files
    settlement_mismatch: dict[str, int] = field(default_factory=dict)  # reference -> amount the file shows
    seed: int | None = None

    def update(self, changes: Mapping[str, Any]) -> None:
        names = {spec.name: spec for spec in dataclasses.fields(self)}
        for name, value in changes.items():
            if name not in names:
                raise ValueError(f"unknown setting {name!r}")
            current = getattr(self, name)
            if isinstance(current, (int, float)) and not isinstance(value, (int, float)):
                raise ValueError(f"{name} must be a number")
            if isinstance(current, float):
                value = float(value)
            elif isinstance(current, int):
                value = int(value)
            elif isinstance(current, list) and not isinstance(value, list):
                raise ValueError(f"{name} must be a list")
            elif isinstance(current, dict) and not isinstance(value, dict):
                raise ValueError(f"{name} must be an object")
            setattr(self, name, value)
        if self.api_mode not in ("normal", "timeout", "error"):
            raise ValueError("api_mode is normal, timeout or error")


@dataclass
class Attempt:
    """One try by the payer; a payment may have a failed attempt before a successful one (magic 88)."""

    status: Status
    amount: int
    provider_reference: str
    at: datetime


@dataclass
class SandboxPayment:
    """A payment as the counterpart sees it."""

    reference: str
    amount: int
    created_at: datetime
    status: Status = Status.PENDING
    magic: Magic | None = None
    attempts: list[Attempt] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)     # protocol details: notify URL, return URL, token...
    refunds: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    @property
    def final(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def paid_amount(self) -> int:
        final = self.final
        return final.amount if final and final.status is Status.SUCCEEDED else 0

    def earlier_refund(self, refund_id: object) -> dict[str, Any] | None:
        """The refund already made under the merchant's ``refund_id``: a retry is answered with it, never paid
        twice (the portal standard keys refunds on it; for MoMo's orderId and Payoo's RefundId this is the safe
        reading of an unpublished behaviour)."""
        return next((item for item in self.refunds if refund_id and item.get("refund_id") == refund_id), None)

    def view(self) -> dict[str, Any]:
        final = self.final
        return {
            "reference": self.reference, "amount": self.amount, "status": self.status.value.upper(),
            "magic": self.magic.name if self.magic else "", "paid_amount": self.paid_amount,
            "provider_reference": final.provider_reference if final else "",
            "attempts": [{"status": a.status.value.upper(), "amount": a.amount,
                          "provider_reference": a.provider_reference, "at": a.at.isoformat()} for a in self.attempts],
            "refunds": self.refunds, "deliveries": self.deliveries,
            "data": {k: v for k, v in self.data.items() if isinstance(v, (str, int, float, bool))},
        }


class PaymentBook:
    """The counterpart's record of payments, keyed by our reference (or its own id for credits)."""

    def __init__(self) -> None:
        self._payments: dict[str, SandboxPayment] = {}
        self.lock = threading.RLock()

    def add(self, payment: SandboxPayment) -> tuple[SandboxPayment, bool]:
        """Store ``payment`` unless one with its reference exists; returns (the stored one, created?)."""
        with self.lock:
            existing = self._payments.get(payment.reference)
            if existing is not None:
                return existing, False
            self._payments[payment.reference] = payment
            return payment, True

    def get(self, reference: str) -> SandboxPayment | None:
        with self.lock:
            return self._payments.get(reference)

    def all(self) -> list[SandboxPayment]:
        with self.lock:
            return list(self._payments.values())

    def clear(self) -> None:
        with self.lock:
            self._payments.clear()


@dataclass
class Delivery:
    """One callback to send. ``build`` runs at each attempt, so protocols that sign with a timestamp and nonce
    sign every attempt anew."""

    label: str
    build: Callable[[], tuple[str, str, dict[str, str], bytes | None]]   # method, url, headers, body
    acknowledged: Callable[[int, bytes], bool] = lambda status, body: 200 <= status < 300
    max_attempts: int | None = None


class CallbackSender:
    """Sends deliveries when due from a bounded heap, with a few worker threads, retrying unacknowledged ones
    with backoff; each attempt's outcome is recorded on the payment."""

    def __init__(self, settings: SandboxSettings, *, workers: int = 4, capacity: int = 50_000) -> None:
        self.settings = settings
        self.capacity = capacity
        self._heap: list[tuple[float, int, Delivery, int, SandboxPayment]] = []
        self._order = itertools.count()
        self._condition = threading.Condition()
        self._busy = 0
        self._stopped = False
        self.dropped = 0
        self._session = requests.Session()
        self._threads = [threading.Thread(target=self._run, name=f"sandbox-sender-{n}", daemon=True)
                         for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def schedule(self, delivery: Delivery, delay: float, payment: SandboxPayment, attempt: int = 1) -> None:
        with self._condition:
            if len(self._heap) >= self.capacity:
                self.dropped += 1
                log.warning("sandbox callback queue full: dropped %s", delivery.label)
                return
            heapq.heappush(self._heap, (time.monotonic() + max(delay, 0.0), next(self._order), delivery, attempt,
                                        payment))
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._condition.wait(timeout=(self._heap[0][0] - time.monotonic()) if self._heap else None)
                if self._stopped:
                    return
                _, _, delivery, attempt, payment = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._send(delivery, attempt, payment)
            finally:
                with self._condition:
                    self._busy -= 1
                    self._condition.notify_all()

    def _send(self, delivery: Delivery, attempt: int, payment: SandboxPayment) -> None:
        record: dict[str, Any] = {"label": delivery.label, "attempt": attempt,
                                  "at": datetime.now(UTC).isoformat(), "status": None, "body": "", "error": ""}
        acknowledged = False
        try:
            method, url, headers, body = delivery.build()
            answer = self._session.request(method, url, headers=headers, data=body, allow_redirects=False,
                                           timeout=self.settings.delivery_timeout_seconds)
            record["status"] = answer.status_code
            record["body"] = answer.text[:300]
            acknowledged = delivery.acknowledged(answer.status_code, answer.content)
        except requests.RequestException as exc:
            record["error"] = type(exc).__name__
        payment.deliveries.append(record)
        limit = delivery.max_attempts or self.settings.max_attempts
        if not acknowledged and attempt < limit:
            self.schedule(delivery, self.settings.retry_backoff_seconds * 2 ** (attempt - 1), payment, attempt + 1)

    def idle(self) -> bool:
        with self._condition:
            return not self._heap and self._busy == 0

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until nothing is queued or in flight (tests)."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._heap or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(timeout=min(remaining, 0.05))
            return True

    def pending(self) -> int:
        with self._condition:
            return len(self._heap)

    def stop(self) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join(timeout=2)


class CounterpartProtocol(Protocol):
    """The part of a sandbox that speaks one counterpart's protocol."""

    name: str

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        """Add the counterpart's own routes (create, status, refund, settlement...)."""

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery | None:
        """The callback telling the platform about ``attempt`` (None when this counterpart sends none)."""

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        """Where the payer's browser goes back to after paying ('' if nowhere)."""


@dataclass
class Plan:
    """How the callbacks of one completed payment behave."""

    lost: bool = False
    duplicate: bool = False
    reordered: bool = False
    forged_first: bool = False
    delay: float = 0.0


class Sandbox:
    """One counterpart's simulator: its book, settings, sender and protocol."""

    def __init__(self, protocol: CounterpartProtocol, *, notify_url: str, settings: SandboxSettings | None = None,
                 public_url: str = "") -> None:
        self.protocol = protocol
        self.name = protocol.name
        self.notify_url = notify_url
        self.public_url = public_url.rstrip("/")
        self.settings = settings or SandboxSettings()
        self.book = PaymentBook()
        self.sender = CallbackSender(self.settings)
        self.random = random.Random(self.settings.seed)
        self._sequence = itertools.count(1)
        self._faults_used = 0
        self._fault_lock = threading.Lock()

    # -- identifiers and money ------------------------------------------------------------------------------

    def provider_reference(self, prefix: str = "") -> str:
        """A fresh counterpart transaction id: digits, as most counterparts use."""
        return f"{prefix}{int(time.time()) % 100_000_000:08d}{next(self._sequence):06d}"

    def base_url(self) -> str:
        return self.public_url or request.host_url.rstrip("/")

    # -- the payment's life ----------------------------------------------------------------------------------

    def register(self, reference: str, amount: int, **data: Any) -> tuple[SandboxPayment, bool]:
        payment = SandboxPayment(reference=reference, amount=amount, created_at=datetime.now(UTC),
                                 magic=magic_for(amount), data=dict(data))
        return self.book.add(payment)

    def _plan(self, payment: SandboxPayment) -> Plan:
        name = payment.magic.name if payment.magic else ""
        draw = self.random.random
        settings = self.settings
        return Plan(
            lost=name == "lost" or draw() < settings.loss_rate,
            duplicate=name == "duplicate" or draw() < settings.duplicate_rate,
            reordered=name == "reordered" or draw() < settings.reorder_rate,
            forged_first=name == "forged_first" or draw() < settings.forged_rate,
            delay=settings.callback_delay_seconds + (settings.slow_callback_seconds if name == "slow" else 0.0),
        )

    def complete(self, reference: str, action: Action) -> SandboxPayment:
        """The payer acts on a pending payment: record the attempt(s) and schedule callbacks per the plan."""
        payment = self.book.get(reference)
        if payment is None:
            raise KeyError(reference)
        with self.book.lock:
            if payment.status is not Status.PENDING:
                return payment
            name = payment.magic.name if payment.magic else ""
            if action is Action.PAY and name in ("fail", "abandon"):
                action = Action.FAIL if name == "fail" else Action.ABANDON
            plan = self._plan(payment)
            now = datetime.now(UTC)
            if action is Action.PAY:
                paid = payment.amount + {"underpaid": -MAGIC_DELTA, "overpaid": MAGIC_DELTA}.get(name, 0)
                if plan.reordered:
                    payment.attempts.append(Attempt(Status.FAILED, payment.amount, self.provider_reference(),
                                                    now - timedelta(seconds=30)))
                payment.attempts.append(Attempt(Status.SUCCEEDED, paid, self.provider_reference(), now))
                payment.status = Status.SUCCEEDED
            else:
                status = Status.FAILED if action is Action.FAIL else Status.CANCELLED
                payment.attempts.append(Attempt(status, payment.amount, self.provider_reference(), now))
                payment.status = status
        self._schedule(payment, plan)
        return payment

    def _schedule(self, payment: SandboxPayment, plan: Plan) -> None:
        if plan.lost:
            payment.deliveries.append({"label": "lost on purpose", "attempt": 0, "status": None, "body": "",
                                       "error": "", "at": datetime.now(UTC).isoformat()})
            return
        final = payment.final
        assert final is not None
        # The newest attempt first; with magic 88 the older, failed attempt's notice arrives after it.
        ordered = [final, *payment.attempts[-2::-1]] if plan.reordered else [final]
        delay = plan.delay
        if plan.forged_first:
            forged = self.protocol.notice(self, payment, final, forged=True)
            if forged is not None:
                forged.max_attempts = 1
                self.sender.schedule(forged, delay, payment)
                delay += 0.2
        for attempt in ordered:
            notice = self.protocol.notice(self, payment, attempt, forged=False)
            if notice is None:
                continue
            self.sender.schedule(notice, delay, payment)
            if plan.duplicate:
                again = self.protocol.notice(self, payment, attempt, forged=False)
                if again is not None:
                    self.sender.schedule(again, delay + 0.2, payment)
            delay += 0.3

    # -- faults ----------------------------------------------------------------------------------------------

    def api_fault(self, payment: SandboxPayment | None = None, *, per_payment: bool = False) -> Response | None:
        """Misbehave if told to: sandbox-wide ``api_mode``, or magic 93/95 on this payment's status and refund
        calls (``per_payment``). Returns the response to send instead, or None to answer normally."""
        mode = self.settings.api_mode
        if mode != "normal":
            with self._fault_lock:
                if self.settings.api_fault_count and self._faults_used >= self.settings.api_fault_count:
                    mode = "normal"
                else:
                    self._faults_used += 1
        if mode == "normal" and per_payment and payment is not None and payment.magic is not None:
            mode = {"status_timeout": "timeout", "status_error": "error"}.get(payment.magic.name, "normal")
        if mode == "timeout":
            time.sleep(self.settings.api_timeout_seconds)
            return json_response({"error": "sandbox timeout"}, 504)
        if mode == "error":
            return json_response({"error": "sandbox error mode"}, 503)
        return None

    # -- settlement ------------------------------------------------------------------------------------------

    def settled(self, day: date) -> list[tuple[SandboxPayment, Attempt, int]]:
        """Paid payments of ``day`` (Vietnam time) with the amount the file shows, after the injected faults:
        missing lines (magic 97 or ``settlement_missing``) and wrong amounts (magic 98 or ``settlement_mismatch``)."""
        rows = []
        for payment in self.book.all():
            final = payment.final
            if final is None or final.status is not Status.SUCCEEDED or final.at.astimezone(VIETNAM).date() != day:
                continue
            name = payment.magic.name if payment.magic else ""
            if name == "settlement_missing" or payment.reference in self.settings.settlement_missing:
                continue
            amount = final.amount + (MAGIC_DELTA if name == "settlement_mismatch" else 0)
            rows.append((payment, final, self.settings.settlement_mismatch.get(payment.reference, amount)))
        return rows

    def settlement_lines(self, day: date) -> list[SettlementLine]:
        return [SettlementLine(payment.reference, final.provider_reference, amount, Status.SUCCEEDED, day)
                for payment, final, amount in self.settled(day)]

    def stop(self) -> None:
        self.sender.stop()


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status, content_type="application/json",
                    headers=dict(headers or {}))


def parse_day(text: str, fmt: str = "%Y-%m-%d") -> date | None:
    try:
        return datetime.strptime(text, fmt).date()
    except ValueError:
        return None


_PAGE = """<!doctype html><html lang="vi"><meta charset="utf-8"><title>{title}</title>
<body style="font-family:sans-serif;max-width:40em;margin:2em auto"><h1>{title}</h1>{content}</body></html>"""


def page(title: str, content: str, status: int = 200) -> Response:
    return Response(_PAGE.format(title=html.escape(title), content=content), status=status,
                    content_type="text/html; charset=utf-8")


def admin_blueprint(sandbox: Sandbox) -> Blueprint:
    """The routes every sandbox has: the payer's page and a JSON API to pay, fail or abandon, inspect payments,
    change settings and reset."""
    blueprint = Blueprint(f"sandbox_{sandbox.name}", __name__)

    @blueprint.get("/sandbox/health")
    def health() -> Response:
        return json_response({"sandbox": sandbox.name, "payments": len(sandbox.book.all()),
                              "pending_callbacks": sandbox.sender.pending(),
                              "dropped_callbacks": sandbox.sender.dropped})

    @blueprint.get("/sandbox/settings")
    def get_settings() -> Response:
        return json_response(dataclasses.asdict(sandbox.settings))

    @blueprint.post("/sandbox/settings")
    def change_settings() -> Response:
        changes = request.get_json(silent=True)
        if not isinstance(changes, dict):
            return json_response({"error": "send a JSON object of settings"}, 400)
        try:
            sandbox.settings.update(changes)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        if "api_mode" in changes or "api_fault_count" in changes:
            sandbox._faults_used = 0
        return json_response(dataclasses.asdict(sandbox.settings))

    @blueprint.post("/sandbox/reset")
    def reset() -> Response:
        sandbox.book.clear()
        return json_response({"reset": True})

    @blueprint.get("/sandbox/payments")
    def list_payments() -> Response:
        return json_response({"payments": [payment.view() for payment in sandbox.book.all()]})

    @blueprint.get("/sandbox/payments/<reference>")
    def show(reference: str) -> Response:
        payment = sandbox.book.get(reference)
        if payment is None:
            return json_response({"error": "no such payment"}, 404)
        return json_response(payment.view())

    @blueprint.post("/sandbox/payments/<reference>/<action>")
    def act(reference: str, action: str) -> Response:
        try:
            chosen = Action(action)
        except ValueError:
            return json_response({"error": "action is pay, fail or abandon"}, 400)
        try:
            payment = sandbox.complete(reference, chosen)
        except KeyError:
            return json_response({"error": "no such payment"}, 404)
        if request.form.get("html"):
            back = sandbox.protocol.return_url(sandbox, payment)
            link = f'<p><a href="{html.escape(back)}">Quay lại / Return to the merchant</a></p>' if back else ""
            return page("Sandbox", f"<p>{html.escape(reference)}: {payment.status.value}</p>{link}")
        return json_response(payment.view())

    @blueprint.get("/sandbox/pay/<reference>")
    def payer_page(reference: str) -> Response:
        payment = sandbox.book.get(reference)
        if payment is None:
            return page("Sandbox", "<p>Không tìm thấy giao dịch / no such payment</p>", 404)
        buttons = "".join(
            f'<form method="post" action="/sandbox/payments/{html.escape(reference)}/{action.value}" '
            f'style="display:inline"><input type="hidden" name="html" value="1">'
            f'<button type="submit" name="do" value="{action.value}">{label}</button></form> '
            for action, label in ((Action.PAY, "Thanh toán / Pay"), (Action.FAIL, "Lỗi / Fail"),
                                  (Action.ABANDON, "Hủy / Abandon")))
        magic = f"<p>Test mode: {html.escape(payment.magic.description)}</p>" if payment.magic else ""
        return page(f"{sandbox.name} sandbox",
                    f"<p>Reference {html.escape(reference)}</p><p>Amount {payment.amount:,} đồng</p>{magic}{buttons}")

    return blueprint


def create_sandbox_app(protocol: CounterpartProtocol, *, notify_url: str, settings: SandboxSettings | None = None,
                       public_url: str = "") -> Flask:
    """A Flask app for ``protocol`` with the shared routes; the Sandbox is at ``app.extensions['dvc_sandbox']``."""
    sandbox = Sandbox(protocol, notify_url=notify_url, settings=settings, public_url=public_url)
    app = Flask(f"sandbox_{protocol.name}")
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    app.extensions["dvc_sandbox"] = sandbox
    app.register_blueprint(admin_blueprint(sandbox))
    protocol.register(app, sandbox)
    return app


def sandbox_of(app: Flask) -> Sandbox:
    sandbox = app.extensions["dvc_sandbox"]
    assert isinstance(sandbox, Sandbox)
    return sandbox
