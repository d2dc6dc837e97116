"""Each connector against its sandbox over real HTTP: create, pay, signed callback through the real callback route,
status query, refund and the settlement file with its injected faults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from connectors_it import World, wait_until

from payment_service.domain.connector import ConnectorError, ConnectorErrorKind, ConnectorStatus
from payment_service.sandbox.common import VIETNAM

PUSH = ["vnpay", "momo", "payoo", "vietcombank", "vietinbank", "bidv", "agribank", "mb", "vnptpay"]
ALL = [*PUSH, "nganluong"]
# What each provider's acknowledgement of an accepted callback looks like on the wire.
ACKNOWLEDGED = {"vnpay": (200, '"RspCode": "00"'), "momo": (204, ""), "payoo": (200, "NOTIFY_RECEIVED"),
                "nganluong": (200, "Payment received")}


def today() -> datetime:
    return datetime.now(UTC).astimezone(VIETNAM)


def query(world: World, code: str, reference: str, amount: int, provider_reference: str = "") -> ConnectorStatus:
    extra = {"provider_reference": provider_reference} if code == "nganluong" else {}
    return world.connector(code).query_status(reference, amount=amount,
                                              created_at=datetime.now(UTC) - timedelta(minutes=1), **extra).status


@pytest.mark.parametrize("code", ALL)
def test_create_pay_callback_query_refund(world: World, code: str):
    reference, created = world.start(code, 150_000)
    assert created.status is ConnectorStatus.PENDING and created.redirect_url
    assert query(world, code, reference, 150_000, created.provider_reference) is ConnectorStatus.PENDING
    world.act(code, reference)
    [notification] = wait_until(lambda: world.core.about(reference))
    assert (notification.status, notification.amount) == (ConnectorStatus.SUCCEEDED, 150_000)
    [delivery] = world.view(code, reference)["deliveries"]
    status, text = ACKNOWLEDGED.get(code, (200, '"code": "OK"'))
    assert delivery["status"] == status and text in delivery["body"]
    assert query(world, code, reference, 150_000, created.provider_reference) is ConnectorStatus.SUCCEEDED
    if world.connector(code).info.supports_refund:
        provider_reference = world.connector(code).query_status(
            reference, amount=150_000, created_at=datetime.now(UTC)).provider_reference
        refund = world.connector(code).refund(reference, provider_reference, 50_000, f"rf-{reference}")
        assert refund.accepted
        # A retry under the same refund id (its first answer lost) never pays twice: the counterpart answers with
        # the same refund, or (VNPay, whose request id it is) refuses a request id it has seen.
        if code == "vnpay":
            with pytest.raises(ConnectorError) as refused:
                world.connector(code).refund(reference, provider_reference, 50_000, f"rf-{reference}")
            assert refused.value.provider_code == "94"
        else:
            again = world.connector(code).refund(reference, provider_reference, 50_000, f"rf-{reference}")
            assert again.accepted and again.provider_reference == refund.provider_reference
        assert [item["amount"] for item in world.view(code, reference)["refunds"]] == [50_000]
        too_much = world.connector(code).refund(reference, provider_reference, 150_000, f"rf2-{reference}")
        assert not too_much.accepted
    lines = {line.reference: line for line in world.connector(code).fetch_settlement(today().date())}
    assert lines[reference].amount == 150_000 and lines[reference].status is ConnectorStatus.SUCCEEDED


@pytest.mark.parametrize("code", ["vnpay", "momo", "vietcombank"])
def test_settlement_files_carry_the_injected_missing_and_mismatched_lines(world: World, code: str):
    normal, _ = world.start(code, 120_000)
    missing, _ = world.start(code, 120_097)
    mismatched, _ = world.start(code, 120_098)
    injected, _ = world.start(code, 120_000)
    for reference in (normal, missing, mismatched, injected):
        world.act(code, reference)
    response = requests.post(f"{world.url(code)}/sandbox/settings", timeout=5,
                             json={"settlement_mismatch": {injected: 1}})
    assert response.status_code == 200
    try:
        lines = {line.reference: line.amount for line in world.connector(code).fetch_settlement(today().date())}
    finally:
        requests.post(f"{world.url(code)}/sandbox/settings", json={"settlement_mismatch": {}}, timeout=5)
    assert lines[normal] == 120_000
    assert missing not in lines
    assert lines[mismatched] == 121_098
    assert lines[injected] == 1


@pytest.mark.parametrize("code", ["vnpay", "momo", "payoo", "vietcombank"])
def test_magic_fail_and_abandon(world: World, code: str):
    failed, _ = world.start(code, 100_013)
    world.act(code, failed)      # the payer "pays"; the magic amount makes it fail
    [notification] = wait_until(lambda: world.core.about(failed))
    assert notification.status is ConnectorStatus.FAILED
    abandoned, _ = world.start(code, 100_000)
    world.act(code, abandoned, "abandon")
    [notification] = wait_until(lambda: world.core.about(abandoned))
    assert notification.status is ConnectorStatus.CANCELLED


@pytest.mark.parametrize("code", ["vnpay", "momo", "payoo", "vietcombank", "nganluong"])
def test_magic_lost_callback_is_found_by_a_status_query(world: World, code: str):
    reference, created = world.start(code, 100_031)
    world.act(code, reference)
    assert world.core.about(reference) == []
    assert world.view(code, reference)["deliveries"][0]["label"] == "lost on purpose"
    assert query(world, code, reference, 100_031, created.provider_reference) is ConnectorStatus.SUCCEEDED


@pytest.mark.parametrize("code", ["vnpay", "momo", "payoo", "vietcombank"])
def test_magic_duplicate_callbacks_share_a_notification_id(world: World, code: str):
    reference, _ = world.start(code, 100_077)
    world.act(code, reference)
    notifications = wait_until(lambda: len(world.core.about(reference)) == 2 and world.core.about(reference))
    assert len({notification.notification_id for notification in notifications}) == 1


# What a provider answers a callback whose signature failed.
REFUSED = {"vnpay": (200, '"RspCode": "97"'), "momo": (400, "bad_signature"),
           "payoo": (400, "NOTIFY_REJECTED BAD_SIGNATURE"), "vietcombank": (401, "BAD_SIGNATURE")}


@pytest.mark.parametrize("code", ["vnpay", "momo", "payoo", "vietcombank"])
def test_magic_forged_callback_is_refused_and_the_genuine_one_applied(world: World, code: str):
    reference, _ = world.start(code, 100_066)
    world.act(code, reference)
    [notification] = wait_until(lambda: world.core.about(reference))
    assert notification.status is ConnectorStatus.SUCCEEDED
    forged, genuine = sorted(world.view(code, reference)["deliveries"], key=lambda d: d["at"])
    status, text = REFUSED[code]
    assert forged["status"] == status and text in forged["body"] and "forged" in forged["label"]
    assert genuine["status"] in (200, 204)


@pytest.mark.parametrize("code", ["vnpay", "vietcombank"])
def test_magic_reordered_callbacks_deliver_the_stale_failure_last(world: World, code: str):
    reference, _ = world.start(code, 100_088)
    world.act(code, reference)
    notifications = wait_until(lambda: len(world.core.about(reference)) == 2 and world.core.about(reference))
    assert [n.status for n in notifications] == [ConnectorStatus.SUCCEEDED, ConnectorStatus.FAILED]
    assert notifications[0].provider_reference != notifications[1].provider_reference


@pytest.mark.parametrize("code", ["vnpay", "momo", "payoo", "vietcombank"])
def test_magic_underpayment_reports_the_paid_amount(world: World, code: str):
    reference, _ = world.start(code, 100_055)
    world.act(code, reference)
    [notification] = wait_until(lambda: world.core.about(reference))
    assert notification.amount == 99_055


def test_magic_slow_callback_waits(world: World):
    reference, _ = world.start("momo", 100_042)
    world.act("momo", reference)
    assert len(wait_until(lambda: world.core.about(reference), timeout=5)) == 1
    delivered_at = datetime.fromisoformat(world.view("momo", reference)["deliveries"][0]["at"])
    paid_at = datetime.fromisoformat(world.view("momo", reference)["attempts"][0]["at"])
    assert (delivered_at - paid_at).total_seconds() >= 0.5


@pytest.mark.parametrize(("code", "ending", "kind"), [
    ("vnpay", 93, ConnectorErrorKind.TIMEOUT), ("vietcombank", 93, ConnectorErrorKind.TIMEOUT),
    ("momo", 95, ConnectorErrorKind.UNAVAILABLE), ("payoo", 95, ConnectorErrorKind.UNAVAILABLE),
])
def test_magic_status_faults(world: World, code: str, ending: int, kind: ConnectorErrorKind):
    reference, _ = world.start(code, 100_000 + ending)
    world.act(code, reference)
    connector = world.connector(code).inner          # past the breaker: this is about the error mapping
    connector.http.timeout_seconds = 0.5
    try:
        with pytest.raises(ConnectorError) as failure:
            connector.query_status(reference, amount=100_000 + ending, created_at=datetime.now(UTC))
    finally:
        connector.http.timeout_seconds = 5.0
    assert failure.value.kind is kind


def test_the_nganluong_return_is_verified_by_pulling(world: World):
    reference, _ = world.start("nganluong", 90_000)
    world.act("nganluong", reference)
    [notification] = wait_until(lambda: world.core.about(reference))
    assert notification.provider_reference and notification.amount == 90_000
    forged = requests.get(f"{world.receiver.url}/callbacks/nganluong", timeout=5,
                          params={"token": "made-up-token", "order_code": reference})
    assert forged.status_code == 400 and len(world.core.about(reference)) == 1
