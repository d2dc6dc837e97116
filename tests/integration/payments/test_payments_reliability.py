"""Concurrency and delivery on PostgreSQL: idempotent creates and callbacks under races, signed agency callbacks
delivered once per event id, redelivery, WatchPayments, jobs safe on several replicas, the HTTP edge."""

from __future__ import annotations

import io
import json
import statistics
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import sqlalchemy as sa
import zxingcpp
from dvc.payments.v1 import payments_pb2 as pb
from payments_it import Platform, Receiver, create_request, start_platform
from PIL import Image
from prometheus_client import REGISTRY

from payment_service.adapters import orm
from payment_service.adapters.receipts import signed_facts
from payment_service.domain.connector import (
    CallbackOutcome,
    ConnectorResult,
    ConnectorStatus,
    InboundNotification,
    NotificationKind,
)
from payment_service.domain.model import EventSource
from payment_service.domain.vietqr import VietQr, parse_payload
from servicekit.db import make_engine
from servicekit.testing import fresh_postgres_url


def _rows(platform: Platform, table: sa.Table, *conditions: sa.ColumnElement[bool]) -> int:
    engine = make_engine(platform.database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table).where(*conditions))
                       .scalar() or 0)
    finally:
        engine.dispose()


def _success(reference: str, notification_id: str = "ipn-1") -> InboundNotification:
    return InboundNotification(NotificationKind.PAYMENT_RESULT, reference, ConnectorStatus.SUCCEEDED, 185_000,
                               "FT-IT-1", notification_id)


def test_fifty_concurrent_identical_creates_make_exactly_one_payment(platform: Platform) -> None:
    key = f"race-{uuid.uuid4().hex}"
    request = create_request(key)
    metadata = platform.token()
    barrier = threading.Barrier(50)

    def create(_: int) -> tuple[str, bool]:
        barrier.wait(timeout=10)
        response = platform.stub.CreatePayment(request, metadata=metadata, timeout=30)
        return response.payment.id, response.replayed

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(create, range(50)))
    assert len({payment_id for payment_id, _ in results}) == 1
    assert sum(1 for _, replayed in results if not replayed) == 1
    assert _rows(platform, orm.payments, orm.payments.c.idempotency_key == key) == 1
    assert _rows(platform, orm.payment_events, orm.payment_events.c.payment_id == results[0][0]) == 1


def test_ten_concurrent_duplicate_success_callbacks_make_one_transition_and_one_agency_event(
        platform: Platform) -> None:
    payment = platform.stub.CreatePayment(create_request(f"dup-{uuid.uuid4().hex}"), metadata=platform.token()).payment
    barrier = threading.Barrier(10)

    def deliver(_: int) -> CallbackOutcome:
        barrier.wait(timeout=10)
        return platform.services.handle_notification("fakebank", _success(payment.reference))

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(deliver, range(10)))
    assert outcomes.count(CallbackOutcome.ACCEPTED) == 1
    assert outcomes.count(CallbackOutcome.DUPLICATE) == 9
    events = orm.payment_events
    assert _rows(platform, events, events.c.payment_id == payment.id, events.c.type == "payment.succeeded") == 1
    outbox = orm.outbox
    assert _rows(platform, outbox, outbox.c.payment_id == payment.id, outbox.c.kind == "agency_callback") == 1
    assert _rows(platform, outbox, outbox.c.payment_id == payment.id, outbox.c.kind == "receipt") == 1


def test_money_after_a_cancellation_is_counted_once_per_transaction_on_every_path(platform: Platform) -> None:
    payment = platform.stub.CreatePayment(create_request(f"late-{uuid.uuid4().hex}"), metadata=platform.token()).payment
    platform.stub.CancelPayment(pb.CancelPaymentRequest(payment_id=payment.id, reason="wrong fee"),
                                metadata=platform.token())
    notice = _success(payment.reference, notification_id=f"ipn-{uuid.uuid4().hex}")
    assert platform.services.handle_notification("fakebank", notice) is CallbackOutcome.ACCEPTED
    # The sweep or reconciliation asks the bank later and hears of the same transfer (the stored list of counted
    # transactions must survive the database round trip for this to be recognised).
    answer = ConnectorResult(ConnectorStatus.SUCCEEDED, "FT-IT-1", 185_000)
    for _ in range(2):
        stored = platform.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.id),
                                          metadata=platform.token()).payment
        assert stored.paid_amount == 185_000
        with platform.services.uow_factory() as uow:
            domain_payment = uow.payments.get(payment.id)
        assert domain_payment is not None and domain_payment.credited == ["fakebank/FT-IT-1"]
        assert platform.services.apply_status_result(domain_payment, "fakebank", answer,
                                                     EventSource.STATUS_QUERY) is CallbackOutcome.DUPLICATE
    events = orm.payment_events
    assert _rows(platform, events, events.c.payment_id == payment.id,
                 events.c.type == "payment.late_success") == 1


def test_the_agency_gets_each_event_once_signed_within_a_second_and_the_receipt_reaches_the_wallet(
        platform: Platform) -> None:
    receiver = platform.receiver
    lags_before = REGISTRY.get_sample_value("dvc_payment_callback_lag_seconds_count") or 0.0
    lags = []
    for attempt in range(5):
        payment = platform.stub.CreatePayment(create_request(f"cb-{uuid.uuid4().hex}"),
                                              metadata=platform.token()).payment
        confirmed = time.time()
        assert platform.services.handle_notification("fakebank", _success(payment.reference, f"ipn-cb-{attempt}")) \
            is CallbackOutcome.ACCEPTED
        [delivered] = receiver.for_payment(payment.id)
        lags.append(delivered["at"] - confirmed)
    assert statistics.median(lags) < 1.0, lags  # the target: median bank confirmation → agency
    deadline = time.monotonic() + 5  # the dispatcher records the lag just after the agency answered
    while time.monotonic() < deadline and \
            (REGISTRY.get_sample_value("dvc_payment_callback_lag_seconds_count") or 0.0) < lags_before + 5:
        time.sleep(0.02)
    assert (REGISTRY.get_sample_value("dvc_payment_callback_lag_seconds_count") or 0.0) >= lags_before + 5
    assert delivered["body"]["type"] == "payment.succeeded" and delivered["body"]["sequence"] == 2
    time.sleep(0.3)
    assert receiver.event_ids().count(delivered["event_id"]) == 1
    assert receiver.bad_signatures == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(r.payment_id == payment.id
                                                  for r in platform.issuer.issued.values()):
        time.sleep(0.02)
    [receipt] = [r for r in platform.issuer.issued.values() if r.payment_id == payment.id]
    assert signed_facts(receipt)["amount"] == 185_000
    redelivered = platform.stub.RedeliverEvent(pb.RedeliverEventRequest(event_id=delivered["event_id"]),
                                               metadata=platform.token())
    assert redelivered.event.sequence == 2
    receiver.for_payment(payment.id, count=2)
    assert receiver.event_ids().count(delivered["event_id"]) == 2


def test_a_failing_agency_endpoint_is_retried_until_it_answers(platform: Platform) -> None:
    receiver = platform.receiver
    payment = platform.stub.CreatePayment(create_request(f"retry-{uuid.uuid4().hex}"),
                                          metadata=platform.token()).payment
    with receiver.lock:
        receiver.fail_for[payment.id] = 2
    platform.stub.CancelPayment(pb.CancelPaymentRequest(payment_id=payment.id, reason="retry test"),
                                metadata=platform.token())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = platform.stub.ListEvents(pb.ListEventsRequest(payment_id=payment.id,
                                                               delivery_state=pb.DELIVERY_STATE_DELIVERED),
                                          metadata=platform.token()).events
        if events:
            break
        time.sleep(0.05)
    assert [e.type for e in events] == ["payment.cancelled"] and events[0].attempts == 3


def test_watch_payments_streams_the_agencys_own_events(platform: Platform) -> None:
    stream = platform.stub.WatchPayments(pb.WatchPaymentsRequest(), metadata=platform.token(), timeout=10)
    other_stream = platform.stub.WatchPayments(pb.WatchPaymentsRequest(), metadata=platform.token("HN"), timeout=1)
    time.sleep(0.2)
    payment = platform.stub.CreatePayment(create_request(f"watch-{uuid.uuid4().hex}"),
                                          metadata=platform.token()).payment
    platform.stub.CancelPayment(pb.CancelPaymentRequest(payment_id=payment.id), metadata=platform.token())
    seen = []
    for message in stream:
        if message.event.payment_id == payment.id:
            seen.append(message.event.type)
        if len(seen) == 2:
            break
    stream.cancel()
    assert seen == ["payment.created", "payment.cancelled"]
    try:
        leaked = [m.event.payment_id for m in other_stream]
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        leaked = []
    assert payment.id not in leaked


def test_the_http_edge_serves_the_cached_qr_health_and_connector_callbacks(platform: Platform) -> None:
    payment = platform.stub.CreatePayment(create_request(f"http-{uuid.uuid4().hex}"),
                                          metadata=platform.token()).payment
    with urllib.request.urlopen(f"{platform.http_url}/pay/{payment.reference}/qr.png", timeout=5) as response:
        assert response.headers["Cache-Control"] == "no-cache"   # the amount due can change
        assert response.headers["Content-Type"] == "image/png" and response.read().startswith(b"\x89PNG")
    for probe in ("healthz", "readyz"):
        with urllib.request.urlopen(f"{platform.http_url}/{probe}", timeout=5) as response:
            assert response.status == 200
    redirect = urllib.request.Request(f"{platform.http_url}/pay/{payment.reference}?channel=bank")
    opener = urllib.request.build_opener(_NoRedirect())
    try:
        opener.open(redirect, timeout=5)
        raise AssertionError("the channel page did not redirect")
    except urllib.error.HTTPError as error:
        assert error.code == 302 and error.headers["Location"].startswith("https://fakebank.fake.test/pay/")
    pending = platform.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.id), metadata=platform.token())
    assert pending.payment.status == pb.PAYMENT_STATUS_PENDING and pending.payment.connector_code == "fakebank"
    bank = platform.bank()
    signed = bank.callback_request({"reference": payment.reference, "status": "succeeded", "amount": 185_000,
                                    "notification_id": "http-ipn-1", "provider_reference": "FT-HTTP"})
    call = urllib.request.Request(f"{platform.http_url}/callbacks/fakebank", data=signed.body, method="POST",
                                  headers={**signed.headers, "Content-Type": "application/json"})
    with urllib.request.urlopen(call, timeout=5) as response:
        assert json.loads(response.read()) == {"result": "accepted"}
    fetched = platform.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.id), metadata=platform.token())
    assert fetched.payment.status == pb.PAYMENT_STATUS_SUCCEEDED
    forged = urllib.request.Request(f"{platform.http_url}/callbacks/fakebank", data=signed.body, method="POST",
                                    headers={"x-fake-signature": "0" * 64, "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(forged, timeout=5)
        raise AssertionError("a forged callback was accepted")
    except urllib.error.HTTPError as error:
        assert error.code == 400


def test_after_a_short_transfer_the_served_qr_asks_only_for_the_rest(platform: Platform) -> None:
    payment = platform.stub.CreatePayment(create_request(f"short-{uuid.uuid4().hex}"),
                                          metadata=platform.token()).payment

    def served() -> VietQr:
        with urllib.request.urlopen(f"{platform.http_url}/pay/{payment.reference}/qr.png", timeout=5) as response:
            [code] = zxingcpp.read_barcodes(Image.open(io.BytesIO(response.read())))
        return parse_payload(code.text)

    assert served().amount == 185_000                      # rendered and cached at the full amount
    platform.services.handle_notification("fakeqr", InboundNotification(
        NotificationKind.ACCOUNT_CREDITED, "", ConnectorStatus.SUCCEEDED, 100_000, f"FT-{payment.reference}",
        f"short-{payment.reference}", transfer_note=f"{payment.reference} le phi"))
    rest, first = served(), parse_payload(payment.vietqr_payload)
    assert rest.amount == 85_000
    assert (rest.bill_number, rest.purpose, rest.account) == (first.bill_number, first.purpose, first.account)
    with urllib.request.urlopen(f"{platform.http_url}/pay/{payment.reference}", timeout=5) as response:
        page = response.read().decode()
    assert f"/pay/{payment.reference}/qr.png?due=85000" in page and "<strong>85.000 đồng</strong>" in page


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _ours(receiver: Receiver, ids: list[str]) -> list[str]:
    with receiver.lock:
        return [d["event_id"] for d in receiver.deliveries if d["body"]["payment"]["id"] in ids]


def test_jobs_and_dispatchers_on_two_replicas_never_double_process(receiver: Receiver) -> None:
    """Two service instances on one database: expiry and outbox rows are each processed exactly once."""
    url = fresh_postgres_url("payrep")
    first = start_platform(url, receiver, expiry_interval_seconds=3600.0)
    second = start_platform(url, receiver, expiry_interval_seconds=3600.0)
    try:
        soon = datetime.now(UTC) + timedelta(seconds=61)
        stamp = pb.CreatePaymentRequest().expires_at
        stamp.FromDatetime(soon)
        ids = [first.stub.CreatePayment(create_request(f"exp-{i}-{uuid.uuid4().hex}", expires_at=stamp),
                                        metadata=first.token()).payment.id for i in range(30)]
        # Pretend the expiry passed by moving the rows' expiry into the past.
        engine = make_engine(url, pool_size=2)
        with engine.begin() as connection:
            connection.execute(sa.update(orm.payments).where(orm.payments.c.id.in_(ids))
                               .values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        engine.dispose()
        with ThreadPoolExecutor(max_workers=4) as pool:
            counts = list(pool.map(lambda s: s.expire_due(limit=10),
                                   [first.services, second.services] * 4))
        assert sum(counts) == 30
        expired = orm.payment_events
        assert _rows(first, expired, expired.c.type == "payment.expired") == 30
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(_ours(receiver, ids)) < 30:
            time.sleep(0.02)
        time.sleep(0.5)  # a double delivery would land now
        ours = _ours(receiver, ids)
        assert len(ours) == 30 and len(set(ours)) == 30
    finally:
        for instance in (first, second):
            instance.channel.close()
            instance.running.stop(grace_seconds=0.5)



def test_the_zero_configuration_sqlite_database_migrates_and_serves(receiver: Receiver, tmp_path: Path) -> None:
    """`make run` uses SQLite: the same migrations, jobs and dispatcher work there (single process)."""
    local = start_platform(f"sqlite:///{tmp_path / 'payment.sqlite3'}", receiver)
    try:
        payment = local.stub.CreatePayment(create_request("sqlite-1"), metadata=local.token()).payment
        local.stub.CancelPayment(pb.CancelPaymentRequest(payment_id=payment.id), metadata=local.token())
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and payment.id not in {
                d["body"]["payment"]["id"] for d in list(receiver.deliveries)}:
            time.sleep(0.02)
        assert payment.id in {d["body"]["payment"]["id"] for d in list(receiver.deliveries)}
        listed = local.stub.ListEvents(pb.ListEventsRequest(payment_id=payment.id), metadata=local.token())
        assert [(e.type, e.sequence) for e in listed.events] == [("payment.created", 1), ("payment.cancelled", 2)]
    finally:
        local.channel.close()
        local.running.stop(grace_seconds=0.5)
