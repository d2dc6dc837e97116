"""The circuit breaker opens after consecutive outages, lets one probe through after the cool-down, and closes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from prometheus_client import REGISTRY

from payment_service.adapters.circuit_breaker import BreakerConnector, BreakerState, CircuitBreaker
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class ScriptedConnector:
    """A connector whose next outbound calls fail with the given kinds (None = succeed)."""

    def __init__(self, code: str) -> None:
        self.info = ConnectorInfo(code=code, display_name=code, channel="bank")
        self.script: list[ConnectorErrorKind | None] = []
        self.calls = 0

    def _next(self) -> None:
        self.calls += 1
        kind = self.script.pop(0) if self.script else None
        if kind is not None:
            raise ConnectorError(kind, f"scripted {kind.value}")

    def check_credentials(self) -> None:
        return None

    def create(self, order: PaymentOrder) -> ConnectorResult:
        self._next()
        return ConnectorResult(ConnectorStatus.PENDING)

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        self._next()
        return ConnectorResult(ConnectorStatus.SUCCEEDED, amount=amount)

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        self._next()
        return RefundResult(accepted=True)

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        if request.body == b"forged":
            raise ConnectorError(ConnectorErrorKind.BAD_SIGNATURE, "forged")
        return InboundNotification(NotificationKind.PAYMENT_RESULT, "R", ConnectorStatus.SUCCEEDED, 1, "p", "n")

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        return CallbackReply(200, outcome.value.encode())

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        self._next()
        return []

    def parse_settlement(self, content: bytes) -> list[SettlementLine]:
        return []

    def scrub(self, text: str) -> str:
        return text


def query(connector: BreakerConnector) -> ConnectorResult:
    return connector.query_status("R", amount=1, created_at=datetime(2026, 1, 1, tzinfo=UTC))


def gauge(code: str) -> float | None:
    return REGISTRY.get_sample_value("dvc_connector_circuit_open", {"connector": code})


def calls(code: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("dvc_connector_calls_total",
                                     {"connector": code, "operation": "query_status", "outcome": outcome}) or 0.0


@pytest.fixture
def setup(request):
    code = f"cb_{request.node.name[-20:]}".lower().replace("[", "_").replace("]", "_").replace("-", "_")
    clock = FakeClock()
    inner = ScriptedConnector(code)
    wrapped = BreakerConnector(inner, CircuitBreaker(code, failure_threshold=3, cooldown_seconds=30, clock=clock))
    return clock, inner, wrapped, code


def fail_times(wrapped: BreakerConnector, inner: ScriptedConnector, count: int,
               kind: ConnectorErrorKind = ConnectorErrorKind.TIMEOUT) -> None:
    inner.script = [kind] * count
    for _ in range(count):
        with pytest.raises(ConnectorError):
            query(wrapped)


def test_it_opens_after_n_consecutive_outages_and_then_refuses_without_calling(setup):
    _clock, inner, wrapped, code = setup
    fail_times(wrapped, inner, 2)
    assert wrapped.breaker.state is BreakerState.CLOSED and gauge(code) == 0
    fail_times(wrapped, inner, 1, ConnectorErrorKind.UNAVAILABLE)
    assert wrapped.breaker.state is BreakerState.OPEN and gauge(code) == 1
    before = inner.calls
    with pytest.raises(ConnectorError) as refused:
        query(wrapped)
    assert (refused.value.kind, refused.value.provider_code) == (ConnectorErrorKind.UNAVAILABLE, "CIRCUIT_OPEN")
    assert inner.calls == before
    assert calls(code, "circuit_open") == 1 and calls(code, "timeout") == 2 and calls(code, "unavailable") == 1
    health = wrapped.health()
    assert (health.state, health.consecutive_failures, health.failures, health.last_error_kind) == (
        BreakerState.OPEN, 3, 3, "unavailable")
    assert health.open_until is not None


def test_a_success_between_failures_resets_the_count(setup):
    _clock, inner, wrapped, _code = setup
    fail_times(wrapped, inner, 2)
    query(wrapped)
    fail_times(wrapped, inner, 2)
    assert wrapped.breaker.state is BreakerState.CLOSED


def test_refusals_and_bad_signatures_say_the_counterpart_is_up(setup):
    _clock, inner, wrapped, _code = setup
    fail_times(wrapped, inner, 5, ConnectorErrorKind.REJECTED)
    assert wrapped.breaker.state is BreakerState.CLOSED
    for _ in range(5):
        with pytest.raises(ConnectorError):
            wrapped.parse_callback(CallbackRequest("POST", {}, {}, b"forged"))
    assert wrapped.breaker.state is BreakerState.CLOSED


def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes(setup):
    clock, inner, wrapped, code = setup
    fail_times(wrapped, inner, 3)
    clock.now += 29
    with pytest.raises(ConnectorError):
        query(wrapped)                          # still cooling down
    clock.now += 1
    assert wrapped.breaker.state is BreakerState.HALF_OPEN
    calls_before = inner.calls
    assert query(wrapped).status is ConnectorStatus.SUCCEEDED   # the probe
    assert inner.calls == calls_before + 1
    assert wrapped.breaker.state is BreakerState.CLOSED and gauge(code) == 0


def test_a_failed_probe_opens_again_for_another_cool_down(setup):
    clock, inner, wrapped, _code = setup
    fail_times(wrapped, inner, 3)
    clock.now += 30
    fail_times(wrapped, inner, 1)               # the probe fails
    assert wrapped.breaker.state is BreakerState.OPEN
    clock.now += 15
    with pytest.raises(ConnectorError) as refused:
        query(wrapped)
    assert refused.value.provider_code == "CIRCUIT_OPEN"
    clock.now += 15
    assert query(wrapped).status is ConnectorStatus.SUCCEEDED


def test_only_one_probe_at_a_time():
    clock = FakeClock()
    breaker = CircuitBreaker("cb_single_probe", failure_threshold=1, cooldown_seconds=10, clock=clock)
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow() is True
    assert breaker.allow() is False            # the first probe has not reported yet
    breaker.record_success()
    assert breaker.allow() is True


def test_inbound_callbacks_are_never_refused_by_an_open_circuit(setup):
    _clock, inner, wrapped, _code = setup
    fail_times(wrapped, inner, 3)
    assert wrapped.parse_callback(CallbackRequest("POST", {}, {}, b"ok")).reference == "R"


def test_a_create_that_calls_no_one_neither_closes_an_open_circuit_nor_takes_the_probe(setup):
    clock, inner, wrapped, _code = setup
    inner.creates_without_calling = True   # as VNPay's signed URL and VietQR's drawn code
    order = PaymentOrder("p1", "R", 1, "note", "970405", "1", datetime(2026, 1, 1, tzinfo=UTC))
    fail_times(wrapped, inner, 3)
    assert wrapped.create(order).status is ConnectorStatus.PENDING      # still offered while the API is down
    assert wrapped.breaker.state is BreakerState.OPEN
    clock.now += 30
    wrapped.create(order)
    fail_times(wrapped, inner, 1)               # the half-open probe is the next real call, and it fails
    assert wrapped.breaker.state is BreakerState.OPEN
