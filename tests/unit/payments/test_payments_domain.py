"""Pure payment domain: state machine, references, request validation, callback signatures, reconciliation."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from datetime import UTC, date, datetime, timedelta

import pytest
from payments_fakes import T0, make_world

from payment_service import callback_signature
from payment_service.domain import reference
from payment_service.domain.commands import validate_create
from payment_service.domain.connector import ConnectorStatus, SettlementLine
from payment_service.domain.model import (
    FLAG_OVERPAID,
    FLAG_REFUND_REQUIRED,
    BeneficiaryAccount,
    CreditResult,
    EventSource,
    EventType,
    ExpiryPolicy,
    FeeKind,
    FeeLine,
    Payer,
    Payment,
    PaymentStatus,
)
from payment_service.domain.receipt import receipt_document, receipt_number
from payment_service.domain.reconciliation import LedgerEntry, MatchStatus, reconcile
from servicekit.errors import FailedPrecondition, InvalidArgument


def new_payment(amount: int = 100_000) -> Payment:
    return Payment.create(
        id="p1", agency_code="HCM", idempotency_key="k", request_hash="h", reference=reference.new_reference(),
        dossier_code="HS-1", procedure_code="1.1", service_code="", payer=Payer("A", "079090001234"),
        fee_lines=[FeeLine(FeeKind.LE_PHI, "LP", "Lệ phí", amount)], amount=amount,
        beneficiary=BeneficiaryAccount("970405", "1"), description="", expires_at=T0 + timedelta(hours=1),
        created_at=T0, updated_at=T0)


# -- state machine ------------------------------------------------------------------------------------------

def test_a_new_payment_is_created_with_one_event_numbered_1() -> None:
    payment = new_payment()
    assert payment.status is PaymentStatus.CREATED
    assert [(e.sequence, e.type, e.source) for e in payment.new_events] == [(1, EventType.CREATED, EventSource.API)]


def test_pending_then_success_records_each_transition_with_its_source_and_sequence() -> None:
    payment = new_payment()
    payment.mark_pending("bank_a", EventSource.API, T0)
    assert payment.record_success(100_000, "bank_a", "TX1", EventSource.CALLBACK, T0) is CreditResult.APPLIED
    events = payment.take_events()
    assert [(e.sequence, e.from_status, e.to_status, e.source) for e in events] == [
        (1, None, PaymentStatus.CREATED, EventSource.API),
        (2, PaymentStatus.CREATED, PaymentStatus.PENDING, EventSource.API),
        (3, PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, EventSource.CALLBACK),
    ]
    assert payment.paid_amount == 100_000 and payment.provider_reference == "TX1"


@pytest.mark.parametrize("closing", ["cancel", "expire", "fail"])
def test_closed_payments_refuse_further_closing_transitions(closing: str) -> None:
    payment = new_payment()
    later = T0 + timedelta(hours=2)
    {"cancel": lambda: payment.cancel(later, "x"), "expire": lambda: payment.expire(later),
     "fail": lambda: payment.fail(EventSource.CALLBACK, later)}[closing]()
    with pytest.raises(FailedPrecondition) as refused:
        payment.cancel(later, "again")
    assert refused.value.reason == "ILLEGAL_TRANSITION"


def test_a_succeeded_payment_cannot_be_cancelled() -> None:
    payment = new_payment()
    payment.record_success(100_000, "bank_a", "TX", EventSource.CALLBACK, T0)
    with pytest.raises(FailedPrecondition) as refused:
        payment.cancel(T0, "too late")
    assert refused.value.metadata == {"from": "succeeded", "to": "cancelled"}


def test_expiring_before_the_expiry_time_is_refused() -> None:
    with pytest.raises(FailedPrecondition):
        new_payment().expire(T0)


def test_a_success_with_another_amount_never_succeeds() -> None:
    payment = new_payment()
    assert payment.record_success(99_999, "bank_a", "TX", EventSource.CALLBACK, T0) is CreditResult.AMOUNT_MISMATCH
    assert payment.status is PaymentStatus.CREATED
    assert payment.record_success(100_001, "bank_a", "TX", EventSource.CALLBACK, T0) is CreditResult.AMOUNT_MISMATCH
    assert payment.status is PaymentStatus.CREATED


def test_a_second_success_is_a_duplicate_without_event() -> None:
    payment = new_payment()
    payment.record_success(100_000, "bank_a", "TX", EventSource.CALLBACK, T0)
    payment.take_events()
    assert payment.record_success(100_000, "bank_a", "TX", EventSource.STATUS_QUERY, T0) is CreditResult.DUPLICATE
    assert payment.new_events == []


def test_a_second_payment_through_another_channel_is_money_to_give_back_not_a_duplicate() -> None:
    payment = new_payment()
    payment.record_success(100_000, "bank_a", "TX-A", EventSource.CALLBACK, T0)
    payment.take_events()
    # The payer opened two channels while the payment was pending and paid through both.
    assert payment.record_success(100_000, "bank_b", "TX-B", EventSource.CALLBACK, T0) is CreditResult.LATE
    assert payment.status is PaymentStatus.SUCCEEDED and payment.paid_amount == 200_000
    assert FLAG_REFUND_REQUIRED in payment.flags and payment.refundable_amount == 200_000
    assert [event.type for event in payment.take_events()] == [EventType.LATE_SUCCESS]
    # Either transaction reported again, by callback or status query, is recognised.
    for connector, transaction in (("bank_a", "TX-A"), ("bank_b", "TX-B"), ("bank_b", "")):
        assert payment.record_success(100_000, connector, transaction, EventSource.STATUS_QUERY,
                                      T0) is CreditResult.DUPLICATE
    assert payment.paid_amount == 200_000 and payment.new_events == []


def test_a_second_payment_after_a_full_refund_is_refundable_too() -> None:
    payment = new_payment()
    payment.record_success(100_000, "bank_a", "TX-A", EventSource.CALLBACK, T0)
    payment.refund(100_000, "r1", T0)
    assert payment.status is PaymentStatus.REFUNDED
    assert payment.record_success(100_000, "bank_b", "TX-B", EventSource.CALLBACK, T0) is CreditResult.LATE
    payment.refund(100_000, "r2", T0)   # the payer's second payment goes back as well
    assert (payment.status, payment.refundable_amount) == (PaymentStatus.REFUNDED, 0)
    assert FLAG_REFUND_REQUIRED not in payment.flags


def test_late_money_on_a_closed_payment_is_counted_once_however_often_it_is_reported() -> None:
    payment = new_payment()
    later = T0 + timedelta(hours=2)
    payment.cancel(later, "x")
    assert payment.record_success(100_000, "bank_a", "TX9", EventSource.CALLBACK, later) is CreditResult.LATE
    # The status query and reconciliation learn of the same transaction after the callback did.
    assert payment.record_success(100_000, "bank_a", "TX9", EventSource.STATUS_QUERY, later) is CreditResult.DUPLICATE
    assert payment.record_success(100_000, "bank_a", "", EventSource.RECONCILIATION, later) is CreditResult.DUPLICATE
    assert payment.paid_amount == 100_000
    with pytest.raises(InvalidArgument):
        payment.refund(200_000, "r1", later)


def test_a_transaction_first_reported_unnamed_is_named_by_the_next_report_of_it() -> None:
    payment = new_payment()
    assert payment.record_success(100_000, "bank_a", "", EventSource.STATUS_QUERY, T0) is CreditResult.APPLIED
    assert payment.record_success(100_000, "bank_a", "TX1", EventSource.CALLBACK, T0) is CreditResult.DUPLICATE
    # Now that bank_a's transaction has a name, a different one from bank_a is new money.
    assert payment.record_success(100_000, "bank_a", "TX2", EventSource.CALLBACK, T0) is CreditResult.LATE
    assert payment.paid_amount == 200_000


def test_a_vietqr_credit_reported_twice_is_counted_once() -> None:
    payment = new_payment()
    assert payment.record_credit(40_000, "vietqr", "T1", EventSource.CALLBACK, T0) is CreditResult.PARTIAL
    assert payment.record_credit(40_000, "vietqr", "T1", EventSource.STATUS_QUERY, T0) is CreditResult.DUPLICATE
    assert payment.paid_amount == 40_000 and payment.status is PaymentStatus.PENDING


@pytest.mark.parametrize("closing", ["cancel", "expire"])
def test_a_success_after_expiry_or_cancellation_is_recorded_and_flagged_for_refund(closing: str) -> None:
    payment = new_payment()
    later = T0 + timedelta(hours=2)
    payment.cancel(later, "x") if closing == "cancel" else payment.expire(later)
    closed_status = payment.status
    result = payment.record_success(100_000, "bank_a", "TX9", EventSource.CALLBACK, later)
    assert result is CreditResult.LATE
    assert payment.status is closed_status
    assert FLAG_REFUND_REQUIRED in payment.flags
    assert payment.paid_amount == 100_000
    late = payment.new_events[-1]
    assert late.type is EventType.LATE_SUCCESS and late.data["refund_required"] is True
    payment.refund(100_000, "r1", later)
    assert payment.refundable_amount == 0 and FLAG_REFUND_REQUIRED not in payment.flags


def test_partial_credits_keep_the_payment_pending_until_the_total_arrives() -> None:
    payment = new_payment()
    assert payment.record_credit(40_000, "vietqr", "T1", EventSource.CALLBACK, T0) is CreditResult.PARTIAL
    assert payment.status is PaymentStatus.PENDING and payment.paid_amount == 40_000
    assert payment.record_credit(60_000, "vietqr", "T2", EventSource.CALLBACK, T0) is CreditResult.APPLIED
    assert payment.status is PaymentStatus.SUCCEEDED and payment.paid_amount == 100_000
    assert FLAG_OVERPAID not in payment.flags


def test_an_over_payment_succeeds_and_is_flagged() -> None:
    payment = new_payment()
    assert payment.record_credit(120_000, "vietqr", "T1", EventSource.CALLBACK, T0) is CreditResult.APPLIED
    assert payment.status is PaymentStatus.SUCCEEDED
    assert FLAG_OVERPAID in payment.flags
    assert payment.new_events[-1].data["overpaid_by"] == 20_000


def test_partial_then_full_refund() -> None:
    payment = new_payment()
    payment.record_success(100_000, "bank_a", "TX", EventSource.CALLBACK, T0)
    payment.refund(30_000, "r1", T0)
    assert payment.status is PaymentStatus.PARTIALLY_REFUNDED
    with pytest.raises(InvalidArgument):
        payment.refund(70_001, "r2", T0)
    payment.refund(70_000, "r2", T0)
    assert payment.status is PaymentStatus.REFUNDED and payment.refunded_amount == 100_000


def test_an_unpaid_payment_cannot_be_refunded() -> None:
    with pytest.raises(FailedPrecondition):
        new_payment().refund(1, "r", T0)


# -- references ---------------------------------------------------------------------------------------------

def test_references_are_short_ascii_alphanumeric_and_unambiguous() -> None:
    made = {reference.new_reference() for _ in range(2000)}
    assert len(made) == 2000
    for value in made:
        assert len(value) <= 25 and value.isascii() and value.isalnum() and value.isupper()
        assert not set(value[3:]) & set("ILOU")
        assert reference.is_valid(value)


def test_every_single_character_change_is_detected_by_the_check_character() -> None:
    value = reference.new_reference()
    for position in range(3, len(value)):
        for replacement in reference.ALPHABET:
            if replacement != value[position]:
                assert not reference.is_valid(value[:position] + replacement + value[position + 1:])


def test_references_are_found_in_bank_notes_whatever_the_case_and_spacing() -> None:
    value = reference.new_reference()
    spaced = f"{value[:7].lower()} {value[7:]}"
    assert reference.find_in_note(f"CT tu 0123 NGUYEN VAN A chuyen tien {spaced} le phi") == (value, True)
    garbled = value[:-1] + ("0" if value[-1] != "0" else "1")
    assert reference.find_in_note(f"thanh toan {garbled}") == (None, True)
    assert reference.find_in_note("chuyen tien le phi") == (None, False)


# -- validation ---------------------------------------------------------------------------------------------

def _violations(error: InvalidArgument) -> dict[str, str]:
    return {v.field: v.description for v in error.violations}


def test_validation_reports_every_bad_field_at_once() -> None:
    world = make_world()
    agency = world.store.agencies["HCM"]
    command = world.command(dossier_code="", procedure_code="bad code!", payer_national_id="12345",
                            total_amount=1, beneficiary_account="999")
    with pytest.raises(InvalidArgument) as raised:
        validate_create(command, agency, T0, ExpiryPolicy())
    fields = _violations(raised.value)
    assert set(fields) == {"dossier_code", "procedure_code", "payer.national_id", "total_amount",
                           "beneficiary.account"}
    assert "185000" in fields["total_amount"]


@pytest.mark.parametrize("bad", ["\ufffe", "\uffff", "\ud800", "\udfff", "\x00", "\x1f", "\t"])
def test_names_and_descriptions_refuse_what_the_receipts_xml_cannot_carry(bad: str) -> None:
    world = make_world()
    agency = world.store.agencies["HCM"]
    line = world.command().fee_lines[0]
    command = world.command(payer_name=f"Nguyễn{bad}An", description=f"Lệ phí{bad}",
                            fee_lines=(dataclasses.replace(line, name=f"Lệ phí{bad}"), world.command().fee_lines[1]))
    with pytest.raises(InvalidArgument) as raised:
        validate_create(command, agency, T0, ExpiryPolicy())
    fields = _violations(raised.value)
    assert set(fields) == {"payer.name", "description", "fee_lines[0].name"}
    assert f"U+{ord(bad):04X}" in fields["payer.name"]
    # What XML carries stays allowed: Vietnamese, symbols, and characters beyond the Basic Multilingual Plane.
    fine = world.command(payer_name="Đặng Thị Ngọc Ánh 𠀀", description="Phí ½ ¥ \ufffd \ue000 \ud7ff")
    validate_create(fine, agency, T0, ExpiryPolicy())


def test_expiry_defaults_to_a_day_and_must_be_future_and_bounded() -> None:
    world = make_world()
    agency = world.store.agencies["HCM"]
    assert validate_create(world.command(), agency, T0, ExpiryPolicy()) == T0 + timedelta(hours=24)
    for bad in (T0 - timedelta(seconds=1), T0 + timedelta(days=31), datetime(2026, 3, 3, 10, 0)):
        with pytest.raises(InvalidArgument) as raised:
            validate_create(world.command(expires_at=bad), agency, T0, ExpiryPolicy())
        assert set(_violations(raised.value)) == {"expires_at"}


def test_the_canonical_hash_ignores_the_key_but_not_the_body() -> None:
    world = make_world()
    assert world.command("a").canonical_hash() == world.command("b").canonical_hash()
    assert world.command("a").canonical_hash() != world.command("a", dossier_code="HS-OTHER").canonical_hash()


# -- callback signatures ------------------------------------------------------------------------------------

def test_signature_header_is_the_hmac_of_timestamp_dot_body() -> None:
    body = b'{"event":"payment.succeeded"}'
    header = callback_signature.sign(body, ["s3cret"], timestamp=1_700_000_000)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert callback_signature.verify(body, header, ["s3cret"], now=1_700_000_100) == 1_700_000_000


def test_during_rotation_two_signatures_are_sent_and_either_secret_verifies() -> None:
    body = b"{}"
    header = callback_signature.sign(body, ["new", "old"], timestamp=1_700_000_000)
    assert header.count("v1=") == 2
    for secret in ("new", "old"):
        callback_signature.verify(body, header, [secret], now=1_700_000_000)


@pytest.mark.parametrize("tamper", ["body", "secret", "old", "garbage"])
def test_verification_refuses_tampered_stale_or_malformed_callbacks(tamper: str) -> None:
    body = b'{"a":1}'
    header = callback_signature.sign(body, ["k"], timestamp=1_700_000_000)
    now = 1_700_000_000.0
    arguments = {"body": (b'{"a":2}', header, ["k"], now), "secret": (body, header, ["other"], now),
                 "old": (body, header, ["k"], now + 301), "garbage": (body, "v1=abc", ["k"], now)}[tamper]
    with pytest.raises(callback_signature.SignatureError):
        callback_signature.verify(arguments[0], arguments[1], arguments[2], now=arguments[3])


# -- reconciliation -----------------------------------------------------------------------------------------

def test_reconciliation_sorts_every_case_into_its_category() -> None:
    day = date(2026, 3, 2)
    def entry(ref: str, status: PaymentStatus, amount: int = 100, paid_on: date | None = day) -> LedgerEntry:
        return LedgerEntry(f"id-{ref}", "HCM", ref, amount, status, paid_on, amount if paid_on else 0)
    ledger = {"A": entry("A", PaymentStatus.SUCCEEDED), "B": entry("B", PaymentStatus.SUCCEEDED),
              "C": entry("C", PaymentStatus.PENDING, paid_on=None),
              "E": entry("E", PaymentStatus.SUCCEEDED, paid_on=date(2026, 2, 20))}
    paid = [ledger["A"], ledger["B"], entry("D", PaymentStatus.SUCCEEDED)]
    lines = [SettlementLine("A", "TA", 100, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("B", "TB", 90, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("C", "TC", 100, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("E", "TE", 100, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("Z", "TZ", 100, ConnectorStatus.SUCCEEDED, day)]
    verdicts = {item.reference: item.status for item in reconcile(lines, ledger, paid)}
    assert verdicts == {"A": MatchStatus.MATCHED, "B": MatchStatus.AMOUNT_MISMATCH, "C": MatchStatus.STATUS_MISMATCH,
                        "E": MatchStatus.STATUS_MISMATCH, "Z": MatchStatus.MISSING_IN_LEDGER,
                        "D": MatchStatus.MISSING_AT_BANK}


def test_a_payment_made_in_two_transfers_matches_their_total() -> None:
    day = date(2026, 3, 2)
    ledger = {"A": LedgerEntry("1", "HCM", "A", 185_000, PaymentStatus.SUCCEEDED, day, 185_000),
              "B": LedgerEntry("2", "HCM", "B", 185_000, PaymentStatus.SUCCEEDED, day, 185_000)}
    lines = [SettlementLine("A", "FT1", 100_000, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("B", "FT2", 185_000, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("A", "FT3", 85_000, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("Z", "FT4", 1, ConnectorStatus.SUCCEEDED, day),
             SettlementLine("Z", "FT5", 2, ConnectorStatus.SUCCEEDED, day)]
    items = reconcile(lines, ledger, [])
    assert [(item.reference, item.status, item.bank_amount) for item in items] == [
        ("A", MatchStatus.MATCHED, 185_000), ("B", MatchStatus.MATCHED, 185_000),
        # Money for no payment stays one item per transfer: each must be found and returned.
        ("Z", MatchStatus.MISSING_IN_LEDGER, 1), ("Z", MatchStatus.MISSING_IN_LEDGER, 2)]


def test_dates_one_day_apart_still_match() -> None:
    day = date(2026, 3, 2)
    ledger = {"A": LedgerEntry("1", "HCM", "A", 100, PaymentStatus.SUCCEEDED, day - timedelta(days=1), 100)}
    [item] = reconcile([SettlementLine("A", "T", 100, ConnectorStatus.SUCCEEDED, day)], ledger, [])
    assert item.status is MatchStatus.MATCHED


# -- receipts -----------------------------------------------------------------------------------------------

def test_a_receipt_is_numbered_by_the_day_of_payment_in_viet_nam() -> None:
    payment = new_payment()
    last_second = datetime(2026, 3, 2, 16, 59, 59, tzinfo=UTC)   # 23:59:59 on 2 March in Viet Nam
    half_past_midnight = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)  # 00:30 on 3 March in Viet Nam
    assert receipt_number(payment, last_second) == f"BL20260302{payment.reference}"
    assert receipt_number(payment, half_past_midnight) == f"BL20260303{payment.reference}"
    payment.paid_at = half_past_midnight
    agency = make_world().store.agencies["HCM"]
    assert receipt_document(payment, agency, half_past_midnight)["number"] == f"BL20260303{payment.reference}"
