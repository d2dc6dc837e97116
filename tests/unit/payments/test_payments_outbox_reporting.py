"""Outbox dispatch (signatures, retries, dead letters, receipts), agencies admin, reconciliation and statistics."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import date, datetime, timedelta

import pytest
from payments_fakes import ADMIN, HCM, HN, T0, Caller, World
from prometheus_client import REGISTRY

from payment_service import callback_signature
from payment_service.domain.connector import ConnectorStatus, InboundNotification, NotificationKind, SettlementLine
from payment_service.domain.model import Agency, BeneficiaryAccount, ChannelChoice, PaymentStatus
from payment_service.domain.reconciliation import MatchStatus
from payment_service.service_layer.outbox import Dispatcher, DispatchPolicy
from payment_service.service_layer.ports import DeliveryState, OutboxKind
from servicekit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied


class RecordingSender:
    """An agency endpoint: answers with the next scripted status (200 when the script is empty)."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.script = list(statuses)
        self.received: list[tuple[str, bytes, dict[str, str], float]] = []

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_seconds: float) -> int:
        self.received.append((url, body, headers, timeout_seconds))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, Exception):
            raise answer
        return answer


def _dispatcher(world: World, sender: RecordingSender) -> Dispatcher:
    return Dispatcher(world.uow, world.clock, sender, world.issuer, DispatchPolicy(parallelism=2))


def _succeed(world: World, key: str = "key-1") -> str:
    payment = world.create(key)
    notice = InboundNotification(NotificationKind.PAYMENT_RESULT, payment.reference, ConnectorStatus.SUCCEEDED,
                                 185_000, "TX", f"n-{key}")
    world.services.handle_notification("bank_a", notice)
    return payment.id


def test_callbacks_are_signed_posted_with_the_event_id_and_marked_delivered(world: World) -> None:
    _succeed(world)
    sender = RecordingSender()
    assert _dispatcher(world, sender).run_once() == 2  # the callback and the receipt
    [(url, body, headers, timeout)] = sender.received
    assert url == "https://hcm.example.vn/callbacks" and timeout <= 10
    event = json.loads(body)
    assert headers[callback_signature.EVENT_ID_HEADER] == event["event_id"]
    callback_signature.verify(body, headers[callback_signature.HEADER], ["secret-HCM"],
                              now=world.clock.now().timestamp())
    assert all(entry.status is DeliveryState.DELIVERED for entry in world.outbox())
    assert len(world.issuer.issued) == 1
    assert _dispatcher(world, sender).run_once() == 0


def test_failed_deliveries_back_off_exponentially_then_dead_letter_after_three_days(world: World) -> None:
    payment = world.create()
    world.services.cancel_payment(HCM, payment.id, "x")
    sender = RecordingSender(*([500] * 100))
    dispatcher = _dispatcher(world, sender)
    dead_before = REGISTRY.get_sample_value("dvc_payment_events_dead_lettered_total",
                                            {"kind": "agency_callback"}) or 0.0
    delays = []
    while True:
        [entry] = world.outbox()
        if entry.status is DeliveryState.DEAD:
            break
        world.clock.moment = max(world.clock.moment, entry.next_attempt_at)
        before = world.clock.now()
        assert dispatcher.run_once() == 1
        [entry] = world.outbox()
        delays.append((entry.next_attempt_at - before).total_seconds())
    assert entry.last_error == "agency answered HTTP 500"
    assert REGISTRY.get_sample_value("dvc_payment_events_dead_lettered_total",
                                     {"kind": "agency_callback"}) == dead_before + 1
    assert world.clock.now() - T0 <= timedelta(days=3)
    assert world.clock.now() - T0 > timedelta(days=2)
    growing = delays[:8]
    assert all(later > earlier * 1.3 for earlier, later in itertools.pairwise(growing))
    assert max(delays[:-1]) <= 3600 * 1.2
    views, _ = world.services.list_events(HCM, payment.id, DeliveryState.DEAD, "", 0)
    assert [v.event.type.value for v in views] == ["payment.cancelled"]
    redelivered = world.services.redeliver_event(HCM, views[0].event.event_id)
    assert redelivered.delivery is DeliveryState.PENDING
    sender.script = []
    assert dispatcher.run_once() == 1
    assert world.outbox()[0].status is DeliveryState.DELIVERED


def test_transport_errors_are_retried_with_the_reason_scrubbed(world: World) -> None:
    payment = world.create()
    world.services.cancel_payment(HCM, payment.id, "x")
    _dispatcher(world, RecordingSender(ConnectionError("refused token=abcdef123"))).run_once()
    [entry] = world.outbox()
    assert entry.status is DeliveryState.PENDING and "abcdef123" not in entry.last_error
    assert entry.next_attempt_at > world.clock.now()


def test_receipts_are_retried_like_any_event(world: World) -> None:
    _succeed(world)
    world.issuer.fail_next = 1
    dispatcher = _dispatcher(world, RecordingSender())
    dispatcher.run_once()
    [receipt] = world.outbox(OutboxKind.RECEIPT)
    assert receipt.status is DeliveryState.PENDING and world.issuer.issued == {}
    world.clock.moment = receipt.next_attempt_at
    dispatcher.run_once()
    assert world.outbox(OutboxKind.RECEIPT)[0].status is DeliveryState.DELIVERED
    [issued] = world.issuer.issued.values()
    assert issued.payer_national_id == "079090001234"


# -- agencies -----------------------------------------------------------------------------------------------

def _new_agency(code: str = "DN") -> Agency:
    return Agency(code=code, name="UBND Da Nang", callback_url="https://dn.example.vn/cb",
                  accounts=[BeneficiaryAccount("970418", "1234567890")], channels=[ChannelChoice("bank_a", 1)],
                  secrets=[], created_at=T0, updated_at=T0)


def test_register_update_and_rotate_need_the_admin_scope(world: World) -> None:
    with pytest.raises(PermissionDenied):
        world.services.register_agency(HCM, _new_agency(), "k")
    with pytest.raises(PermissionDenied):
        world.services.rotate_callback_secret(HCM, "HCM", 0)
    with pytest.raises(PermissionDenied):
        world.services.update_agency(HN, _new_agency("HN"), {"name"})
    assert "DN" not in world.store.agencies


def test_a_registered_agency_can_create_payments_into_its_account(world: World) -> None:
    agency, secret, secret_id = world.services.register_agency(ADMIN, _new_agency(), "k")
    assert len(secret) >= 32 and [s.secret_id for s in world.store.agencies["DN"].secrets] == [secret_id]
    with pytest.raises(Conflict):
        world.services.register_agency(ADMIN, _new_agency(), "k2")
    dn = Caller("dn", "DN", frozenset({"payments.create"}))
    payment = world.create(caller=dn, agency_code="DN", beneficiary_bin="970418", beneficiary_account="1234567890")
    assert payment.agency_code == agency.code


def test_agency_fields_are_validated(world: World) -> None:
    bad = _new_agency("x")
    bad.name = "UBND \uffff"   # printed on every signed receipt, whose XML cannot carry it
    bad.callback_url = "ftp://nope"
    bad.accounts = [BeneficiaryAccount("12", "")]
    with pytest.raises(InvalidArgument) as refused:
        world.services.register_agency(ADMIN, bad, "k")
    assert {v.field for v in refused.value.violations} == {"code", "name", "callback_url", "accounts[0].bank_bin",
                                                           "accounts[0].account"}
    with pytest.raises(NotFound):
        world.services.update_agency(ADMIN, _new_agency("NOPE"), {"name"})
    with pytest.raises(InvalidArgument):
        world.services.update_agency(ADMIN, _new_agency("HCM"), {"secrets"})


def test_update_changes_only_the_masked_fields(world: World) -> None:
    change = _new_agency("HCM")
    change.callback_url = "https://new.hcm.example.vn/cb"
    updated = world.services.update_agency(ADMIN, change, {"callback_url"})
    assert updated.callback_url == "https://new.hcm.example.vn/cb" and updated.name == "Agency HCM"
    assert world.store.agencies["HCM"].accounts[0].account == "7111000000001"


def test_after_rotation_both_secrets_sign_until_the_old_one_expires(world: World) -> None:
    new_secret, _, old_expiry = world.services.rotate_callback_secret(ADMIN, "HCM", 3600)
    assert old_expiry == T0 + timedelta(hours=1)
    payment = world.create()
    world.services.cancel_payment(HCM, payment.id, "x")
    sender = RecordingSender()
    _dispatcher(world, sender).run_once()
    _, body, headers, _ = sender.received[0]
    header = headers[callback_signature.HEADER]
    assert header.count("v1=") == 2
    for secret in (new_secret, "secret-HCM"):
        callback_signature.verify(body, header, [secret], now=world.clock.now().timestamp())
    world.clock.advance(hours=2)
    other = world.create("k2")
    world.services.cancel_payment(HCM, other.id, "x")
    _dispatcher(world, sender).run_once()
    assert sender.received[-1][2][callback_signature.HEADER].count("v1=") == 1
    with pytest.raises(InvalidArgument):
        world.services.rotate_callback_secret(ADMIN, "HCM", 10**8)


# -- reconciliation and statistics --------------------------------------------------------------------------

def _settlement(lines: list[tuple[str, int, str, date]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["reference", "provider_reference", "amount", "status", "settled_on"])
    for reference, amount, status, day in lines:
        writer.writerow([reference, f"T-{reference}", amount, status, day.isoformat()])
    return out.getvalue().encode()


def _paid_through_bank(world: World, key: str) -> str:
    payment = world.create(key)
    world.services.start_channel(payment.reference, "bank")
    notice = InboundNotification(NotificationKind.PAYMENT_RESULT, payment.reference, ConnectorStatus.SUCCEEDED,
                                 185_000, f"T-{payment.reference}", f"n-{key}")
    world.services.handle_notification("bank_a", notice)
    return payment.reference


def test_a_settlement_file_is_reconciled_and_a_lost_callback_resolved_by_a_status_query(world: World) -> None:
    day = date(2026, 3, 2)
    matched = _paid_through_bank(world, "a")
    wrong_amount = _paid_through_bank(world, "b")
    missing_at_bank = _paid_through_bank(world, "c")
    lost = world.create("d")
    world.services.start_channel(lost.reference, "bank")
    world.bank.settle(lost.reference, ConnectorStatus.SUCCEEDED)
    content = _settlement([(matched, 185_000, "succeeded", day), (wrong_amount, 180_000, "succeeded", day),
                           (lost.reference, 185_000, "succeeded", day), ("DVCNOTOURS000000", 5, "succeeded", day)])
    summary = world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), content, "file-1")
    assert summary.counts == {MatchStatus.MATCHED: 1, MatchStatus.AMOUNT_MISMATCH: 1,
                              MatchStatus.STATUS_MISMATCH: 1, MatchStatus.MISSING_IN_LEDGER: 1,
                              MatchStatus.MISSING_AT_BANK: 1}
    assert summary.resolved == 1
    assert world.stored(lost.id).status is PaymentStatus.SUCCEEDED
    assert world.store.events[-1][1].source.value == "reconciliation"
    again = world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), content, "file-1")
    assert again.report.id == summary.report.id
    _, items, _ = world.reporting.report(HCM, summary.report.id, "", None, "", 0)
    assert {item.item.reference for item in items} == {matched, wrong_amount, lost.reference, missing_at_bank}
    filename, exported = world.reporting.export_csv(HCM, summary.report.id, "")
    rows = list(csv.DictReader(io.StringIO(exported.decode())))
    assert filename.endswith("-HCM.csv") and len(rows) == 4
    assert {row["status"] for row in rows} == {"matched", "amount_mismatch", "status_mismatch", "missing_at_bank"}
    _, hn_items, _ = world.reporting.report(HN, summary.report.id, "", None, "", 0)
    assert hn_items == []
    with pytest.raises(PermissionDenied):
        world.reporting.import_settlement(HCM, "bank_a", day.isoformat(), content, "file-2")


def test_a_malformed_settlement_file_or_unknown_connector_is_refused(world: World) -> None:
    with pytest.raises(InvalidArgument):
        world.reporting.import_settlement(ADMIN, "bank_a", "2026-03-02", b"garbage,line", "k")
    with pytest.raises(NotFound):
        world.reporting.import_settlement(ADMIN, "nope", "2026-03-02", b"", "k")
    with pytest.raises(InvalidArgument):
        world.reporting.import_settlement(ADMIN, "bank_a", "02/03/2026", b"", "k")
    assert world.store.reports == {}


def test_the_settlement_file_can_be_fetched_from_the_connector(world: World) -> None:
    day = date(2026, 3, 2)
    reference = _paid_through_bank(world, "a")
    world.bank.settlements[day] = [SettlementLine(reference, "T", 185_000, ConnectorStatus.SUCCEEDED, day)]
    summary = world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), b"", "")
    assert summary.counts[MatchStatus.MATCHED] == 1 and "fetch_settlement" in world.bank.calls


def test_fetching_the_days_file_again_without_a_key_reports_what_the_connector_has_now(world: World) -> None:
    day = date(2026, 3, 2)
    first = _paid_through_bank(world, "a")
    second = _paid_through_bank(world, "b")
    world.bank.settlements[day] = [SettlementLine(first, "T1", 185_000, ConnectorStatus.SUCCEEDED, day)]
    early = world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), b"", "")
    assert early.counts[MatchStatus.MISSING_AT_BANK] == 1
    same = world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), b"", "")
    assert same.report.id == early.report.id                      # the same file: its stored report
    # The bank completes the day's file later; fetching it again must not return the first, stale report.
    world.bank.settlements[day].append(SettlementLine(second, "T2", 185_000, ConnectorStatus.SUCCEEDED, day))
    complete = world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), b"", "")
    assert world.bank.calls.count("fetch_settlement") == 3
    assert complete.report.id != early.report.id
    assert complete.counts[MatchStatus.MATCHED] == 2 and complete.counts[MatchStatus.MISSING_AT_BANK] == 0
    assert len(world.store.reports) == 2


def test_statistics_count_online_payments_per_agency_procedure_channel_and_day(world: World) -> None:
    _paid_through_bank(world, "a")
    _paid_through_bank(world, "b")
    world.create("unpaid")
    world.create("other-procedure", procedure_code="2.000001")
    world.clock.moment = datetime(2026, 3, 2, 18, 0, tzinfo=T0.tzinfo)  # 01:00 on 3 March in Viet Nam
    world.create("next-day")
    rows, totals = world.reporting.statistics(HCM, "2026-03-02", "2026-03-03", "")
    by_key = {(r.day, r.procedure_code, r.channel): (r.created, r.paid, r.paid_amount) for r in rows}
    assert by_key == {("2026-03-02", "1.000046", "bank_a"): (2, 2, 370_000),
                      ("2026-03-02", "1.000046", ""): (1, 0, 0),
                      ("2026-03-02", "2.000001", ""): (1, 0, 0),
                      ("2026-03-03", "1.000046", ""): (1, 0, 0)}
    day_one = next(t for t in totals if t.day == "2026-03-02")
    assert (day_one.created, day_one.paid, day_one.online_payment_rate) == (4, 2, 0.5)
    hn_rows, _ = world.reporting.statistics(HN, "2026-03-02", "2026-03-03", "")
    assert hn_rows == []
    with pytest.raises(PermissionDenied):
        world.reporting.statistics(HN, "2026-03-02", "2026-03-03", "HCM")
    with pytest.raises(InvalidArgument):
        world.reporting.statistics(HCM, "2026-03-03", "2026-03-02", "")


def test_unresolved_reconciliation_mismatches_are_counted_for_the_alert(world: World) -> None:
    from prometheus_client import REGISTRY

    def counted() -> float:
        return REGISTRY.get_sample_value("dvc_reconciliation_mismatches_total",
                                         {"connector": "bank_a", "status": "missing_in_ledger"}) or 0.0

    before = counted()
    day = T0.date()
    world.bank.settlements[day] = [SettlementLine("DVCNOSUCHPAYMENT", "FT9", 185_000, ConnectorStatus.SUCCEEDED, day)]
    world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), b"", "")
    assert counted() == before + 1
