"""A circuit breaker per connector: opens after consecutive outages, lets one probe through after a cool-down, and
reports health and call metrics; `BreakerConnector` wraps any connector with it."""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

from payment_service.adapters.connectors.base import Clock, utc_now
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackReply,
    CallbackRequest,
    Connector,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorResult,
    InboundNotification,
    PaymentOrder,
    RefundResult,
    SettlementLine,
)

CIRCUIT_OPEN = Gauge("dvc_connector_circuit_open", "1 while the connector's circuit breaker is open (or half-open)",
                     ["connector"])
CALLS = Counter("dvc_connector_calls", "Calls to a bank or intermediary, by operation and outcome "
                "(ok or the error kind; circuit_open when refused without calling)",
                ["connector", "operation", "outcome"])
LATENCY = Histogram("dvc_connector_call_seconds", "Duration of calls to a bank or intermediary",
                    ["connector", "operation"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 10, 15))

T = TypeVar("T")


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class ConnectorHealth:
    """One connector's health for GetConnectorHealth and dashboards."""

    code: str
    display_name: str
    channel: str
    state: BreakerState
    consecutive_failures: int
    calls: int
    failures: int
    last_error_kind: str = ""
    last_error_at: datetime | None = None
    last_success_at: datetime | None = None
    open_until: datetime | None = None   # when the next probe is allowed, while open


class CircuitBreaker:
    """Closed → (``failure_threshold`` consecutive failures) → open → (``cooldown_seconds``) → half-open: one probe
    call; its success closes the circuit, its failure opens it again for another cool-down."""

    def __init__(self, name: str, *, failure_threshold: int = 5, cooldown_seconds: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_seconds = cooldown_seconds
        self.clock = clock
        self._state = BreakerState.CLOSED
        self._consecutive = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._lock = threading.Lock()
        CIRCUIT_OPEN.labels(name).set(0)

    @property
    def state(self) -> BreakerState:
        with self._lock:
            if self._state is BreakerState.OPEN and self.clock() - self._opened_at >= self.cooldown_seconds:
                return BreakerState.HALF_OPEN
            return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive

    def seconds_until_probe(self) -> float:
        with self._lock:
            if self._state is not BreakerState.OPEN:
                return 0.0
            return max(self.cooldown_seconds - (self.clock() - self._opened_at), 0.0)

    def allow(self) -> bool:
        """May a call go out now? In half-open only one probe at a time is let through."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self.clock() - self._opened_at < self.cooldown_seconds:
                    return False
                self._state = BreakerState.HALF_OPEN
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._consecutive = 0
            self._probe_in_flight = False
            self._state = BreakerState.CLOSED
        CIRCUIT_OPEN.labels(self.name).set(0)

    def record_failure(self) -> None:
        with self._lock:
            self._consecutive += 1
            was_probe = self._probe_in_flight
            self._probe_in_flight = False
            if was_probe or self._state is BreakerState.HALF_OPEN or self._consecutive >= self.failure_threshold:
                self._state = BreakerState.OPEN
                self._opened_at = self.clock()
            opened = self._state is BreakerState.OPEN
        CIRCUIT_OPEN.labels(self.name).set(1 if opened else 0)

    def release(self) -> None:
        """A call that says nothing about the counterpart's health (our own configuration error) ends the probe."""
        with self._lock:
            self._probe_in_flight = False


class BreakerConnector:
    """A connector behind its circuit breaker: outbound calls are refused with ConnectorError(UNAVAILABLE,
    provider_code CIRCUIT_OPEN) while open, timed and counted always. Inbound parsing is never refused (a valid
    callback must be applied whatever our outbound health) but is counted."""

    def __init__(self, inner: Connector, breaker: CircuitBreaker, *, clock: Clock = utc_now) -> None:
        self.inner = inner
        self.info = inner.info
        self.breaker = breaker
        self.clock = clock
        self._calls = 0
        self._failures = 0
        self._last_error_kind = ""
        self._last_error_at: datetime | None = None
        self._last_success_at: datetime | None = None
        self._lock = threading.Lock()

    def _count(self, operation: str, outcome: str, failed: bool) -> None:
        CALLS.labels(self.info.code, operation, outcome).inc()
        with self._lock:
            self._calls += 1
            if failed:
                self._failures += 1
                self._last_error_kind = outcome
                self._last_error_at = self.clock()
            elif outcome == "ok":
                self._last_success_at = self.clock()

    def _guarded(self, operation: str, call: Callable[[], T]) -> T:
        if not self.breaker.allow():
            self._count(operation, "circuit_open", failed=False)
            raise ConnectorError(ConnectorErrorKind.UNAVAILABLE,
                                 f"{self.info.code}: circuit open after repeated failures; not called",
                                 provider_code="CIRCUIT_OPEN")
        started = time.monotonic()
        try:
            result = call()
        except ConnectorError as error:
            LATENCY.labels(self.info.code, operation).observe(time.monotonic() - started)
            if error.counts_against_health:
                self.breaker.record_failure()
            elif error.kind is ConnectorErrorKind.CONFIGURATION:
                self.breaker.release()
            else:
                self.breaker.record_success()  # the counterpart answered: it is up, even if it said no
            self._count(operation, error.kind.value, failed=error.counts_against_health)
            raise
        except Exception:
            self.breaker.record_failure()
            self._count(operation, "internal", failed=True)
            raise
        LATENCY.labels(self.info.code, operation).observe(time.monotonic() - started)
        self.breaker.record_success()
        self._count(operation, "ok", failed=False)
        return result

    def check_credentials(self) -> None:
        self.inner.check_credentials()

    def create(self, order: PaymentOrder) -> ConnectorResult:
        if getattr(self.inner, "creates_without_calling", False):
            # A signed URL or a QR built here says nothing about the counterpart's health: it must neither close
            # an open circuit nor take the half-open probe, and an API outage does not stop it.
            return self.inner.create(order)
        return self._guarded("create", lambda: self.inner.create(order))

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        return self._guarded("query_status", lambda: self.inner.query_status(
            reference, amount=amount, created_at=created_at, provider_reference=provider_reference))

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        return self._guarded("refund", lambda: self.inner.refund(
            reference, provider_reference, amount, refund_id, created_at=created_at))

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        return self._guarded("fetch_settlement", lambda: self.inner.fetch_settlement(day))

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        try:
            notification = self.inner.parse_callback(request)
        except ConnectorError as error:
            self._count("parse_callback", error.kind.value, failed=error.counts_against_health)
            raise
        self._count("parse_callback", "ok", failed=False)
        return notification

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        return self.inner.reply(outcome)

    def parse_settlement(self, content: bytes) -> list[SettlementLine]:
        return self.inner.parse_settlement(content)

    def scrub(self, text: str) -> str:
        return self.inner.scrub(text)

    def health(self) -> ConnectorHealth:
        state = self.breaker.state
        wait = self.breaker.seconds_until_probe()
        now = self.clock()
        with self._lock:
            return ConnectorHealth(
                code=self.info.code, display_name=self.info.display_name, channel=self.info.channel, state=state,
                consecutive_failures=self.breaker.consecutive_failures, calls=self._calls, failures=self._failures,
                last_error_kind=self._last_error_kind, last_error_at=self._last_error_at,
                last_success_at=self._last_success_at,
                open_until=now + timedelta(seconds=wait) if state is BreakerState.OPEN else None)
