"""Connector notifications: idempotent, amount-checked, credit notes matched on the reference, review queue."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from cryptography.exceptions import InvalidSignature
from payments_fakes import ADMIN, HCM, HCM_ACCOUNT, HN_ACCOUNT, World

from payment_service.domain.connector import (
    CallbackOutcome,
    ConnectorErrorKind,
    ConnectorResult,
    ConnectorStatus,
    Credit,
    InboundNotification,
    NotificationKind,
)
from payment_service.domain.model import FLAG_REFUND_REQUIRED, EventSource, EventType, PaymentStatus
from payment_service.domain.receipt import XML_NAMESPACE
from payment_service.domain.reference import new_reference
from payment_service.service_layer.ports import OutboxKind
from servicekit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied


def result(reference: str, amount: int, status: ConnectorStatus = ConnectorStatus.SUCCEEDED,
           notification_id: str = "n-1") -> InboundNotification:
    return InboundNotification(NotificationKind.PAYMENT_RESULT, reference, status, amount, "BANKTX1", notification_id)


def credit(note: str, amount: int, notification_id: str = "c-1", reference: str = "",
           account: str = "") -> InboundNotification:
    return InboundNotification(NotificationKind.ACCOUNT_CREDITED, reference, ConnectorStatus.SUCCEEDED, amount,
                               f"FT-{notification_id}", notification_id, transfer_note=note, credited_account=account)


def test_a_credit_to_another_agencys_account_pays_nothing_and_is_held_for_review(world: World) -> None:
    payment = world.create()   # HCM's payment, to HCM's account
    note = f"thanh toan {payment.reference}"
    hanoi = f"{HN_ACCOUNT.bank_bin}/{HN_ACCOUNT.account}"
    assert world.services.handle_notification("vietqr", credit(note, 185_000, "c-1", account=hanoi)) \
        is CallbackOutcome.ACCEPTED
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.CREATED and stored.paid_amount == 0
    assert [(item.reason, item.payment_id) for item in world.store.reviews] == [("wrong_account", payment.id)]
    assert world.services.handle_notification("vietqr", credit(note, 185_000, "c-1", account=hanoi)) \
        is CallbackOutcome.DUPLICATE   # the bank's retry is not a second review item
    assert len(world.store.reviews) == 1
    # The same transfer to HCM's own account is the payment.
    hcm = f"{HCM_ACCOUNT.bank_bin}/{HCM_ACCOUNT.account}"
    world.services.handle_notification("vietqr", credit(note, 185_000, "c-2", account=hcm))
    assert world.stored(payment.id).status is PaymentStatus.SUCCEEDED


def _callbacks(world: World) -> list[dict[str, object]]:
    return [json.loads(e.payload) for e in world.outbox(OutboxKind.AGENCY_CALLBACK)]


def test_a_success_callback_succeeds_the_payment_and_queues_callback_and_receipt_together(world: World) -> None:
    payment = world.create()
    outcome = world.services.handle_notification("bank_a", result(payment.reference, 185_000))
    assert outcome is CallbackOutcome.ACCEPTED
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED and stored.provider_reference == "BANKTX1"
    [body] = _callbacks(world)
    assert body["type"] == "payment.succeeded" and body["sequence"] == 2 and body["source"] == "callback"
    assert body["payment"]["status"] == "succeeded"  # type: ignore[index]
    [receipt] = world.outbox(OutboxKind.RECEIPT)
    assert receipt.event_id == body["event_id"]
    assert world.notifier.count == 1


def test_the_receipt_is_a_signed_xml_document_with_the_payment_facts(world: World) -> None:
    payment = world.create()
    world.services.handle_notification("bank_a", result(payment.reference, 185_000))
    root = ElementTree.fromstring(world.store.receipts[payment.id])
    ns = {"r": XML_NAMESPACE}
    assert root.findtext("r:amount", namespaces=ns) == "185000"
    assert root.findtext("r:bank_transaction_id", namespaces=ns) == "BANKTX1"
    assert root.findtext("r:payer/r:national_id", namespaces=ns) == "079090001234"
    signed = base64.b64decode(root.findtext("r:SignedContent", namespaces=ns) or "")
    receipt = json.loads(signed)
    assert receipt["payer"] == {"name": "Nguyễn Văn An", "national_id": "079090001234"}
    assert [line["amount"] for line in receipt["fee_lines"]] == [135_000, 50_000]
    assert receipt["agency"]["code"] == "HCM" and receipt["number"].endswith(payment.reference)
    signature_element = root.find("r:Signature", ns)
    assert signature_element is not None and signature_element.get("kid") == "test-receipts"
    signature = base64.urlsafe_b64decode((signature_element.text or "") + "==")
    world.signer.public_key().verify(signature, signed)  # raises InvalidSignature when wrong
    tampered = signed.replace(b"185000", b"18500")
    with pytest.raises(InvalidSignature):
        world.signer.public_key().verify(signature, tampered)


def test_duplicate_callbacks_change_nothing_more(world: World) -> None:
    payment = world.create()
    notice = result(payment.reference, 185_000)
    outcomes = [world.services.handle_notification("bank_a", notice) for _ in range(3)]
    assert outcomes == [CallbackOutcome.ACCEPTED, CallbackOutcome.DUPLICATE, CallbackOutcome.DUPLICATE]
    retried_with_new_id = result(payment.reference, 185_000, notification_id="n-2")
    assert world.services.handle_notification("bank_a", retried_with_new_id) is CallbackOutcome.DUPLICATE
    assert len(_callbacks(world)) == 1 and len(world.outbox(OutboxKind.RECEIPT)) == 1


def test_an_amount_mismatch_never_succeeds_and_is_held_for_review(world: World) -> None:
    payment = world.create()
    outcome = world.services.handle_notification("bank_a", result(payment.reference, 18_500))
    assert outcome is CallbackOutcome.AMOUNT_MISMATCH
    assert world.stored(payment.id).status is PaymentStatus.CREATED
    assert [item.reason for item in world.store.reviews] == ["amount_mismatch"]
    assert world.outbox() == []


def test_an_unknown_reference_is_reported_as_such(world: World) -> None:
    assert world.services.handle_notification("bank_a", result(new_reference(), 1)) \
        is CallbackOutcome.UNKNOWN_REFERENCE
    assert world.store.payments == {}


def test_a_failure_callback_fails_an_open_payment_only(world: World) -> None:
    payment = world.create()
    failed = result(payment.reference, 185_000, ConnectorStatus.FAILED)
    assert world.services.handle_notification("bank_a", failed) is CallbackOutcome.ACCEPTED
    assert world.stored(payment.id).status is PaymentStatus.FAILED
    again = result(payment.reference, 185_000, ConnectorStatus.FAILED, notification_id="n-9")
    assert world.services.handle_notification("bank_a", again) is CallbackOutcome.DUPLICATE


def test_a_callback_from_a_connector_the_agency_does_not_use_is_rejected(world: World) -> None:
    payment = world.create()
    world.store.agencies["HCM"].channels = [c for c in world.store.agencies["HCM"].channels
                                            if c.connector_code != "bank_b"]
    assert world.services.handle_notification("bank_b", result(payment.reference, 185_000)) \
        is CallbackOutcome.REJECTED
    assert world.stored(payment.id).status is PaymentStatus.CREATED


def test_a_success_after_cancellation_is_kept_flagged_and_reported(world: World) -> None:
    payment = world.create()
    world.services.cancel_payment(HCM, payment.id, "withdrawn")
    assert world.services.handle_notification("bank_a", result(payment.reference, 185_000)) \
        is CallbackOutcome.ACCEPTED
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.CANCELLED and "refund_required" in stored.flags
    assert [body["type"] for body in _callbacks(world)] == ["payment.cancelled", "payment.late_success"]
    assert world.outbox(OutboxKind.RECEIPT) == []


# -- VietQR credit notices ----------------------------------------------------------------------------------

def test_a_credit_is_matched_on_the_reference_in_the_note_and_the_amount(world: World) -> None:
    payment = world.create()
    note = f"NGUYEN VAN AN chuyen tien {payment.reference.lower()} le phi GPLX"
    assert world.services.handle_notification("vietqr", credit(note, 185_000)) is CallbackOutcome.ACCEPTED
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED and stored.connector_code == "vietqr"


def test_a_partial_credit_keeps_the_payment_pending_and_the_rest_completes_it(world: World) -> None:
    payment = world.create()
    world.services.handle_notification("vietqr", credit(payment.reference, 100_000, "c-1"))
    assert world.stored(payment.id).status is PaymentStatus.PENDING
    assert world.stored(payment.id).paid_amount == 100_000
    world.services.handle_notification("vietqr", credit(payment.reference, 85_000, "c-2"))
    assert world.stored(payment.id).status is PaymentStatus.SUCCEEDED
    types = [body["type"] for body in _callbacks(world)]
    assert types == ["payment.pending", "payment.partially_paid", "payment.succeeded"]


def test_an_over_payment_is_flagged_and_queued_for_review(world: World) -> None:
    payment = world.create()
    world.services.handle_notification("vietqr", credit(payment.reference, 200_000))
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED and "overpaid" in stored.flags
    assert [(i.reason, i.payment_id) for i in world.store.reviews] == [("overpayment", payment.id)]


def test_missing_or_garbled_notes_go_to_the_review_queue(world: World) -> None:
    payment = world.create()
    garbled = payment.reference[:-1] + ("0" if payment.reference[-1] != "0" else "1")
    assert world.services.handle_notification("vietqr", credit("CHUYEN TIEN", 185_000, "c-1")) \
        is CallbackOutcome.ACCEPTED
    world.clock.advance(seconds=1)
    assert world.services.handle_notification("vietqr", credit(f"thanh toan {garbled}", 185_000, "c-2")) \
        is CallbackOutcome.ACCEPTED
    assert [item.reason for item in world.store.reviews] == ["missing_reference", "garbled_reference"]
    assert world.stored(payment.id).status is PaymentStatus.CREATED
    items, _ = world.services.list_review_items(ADMIN, False, "", 0)
    assert [item.notification_id for item in items] == ["c-1", "c-2"]
    assert world.services.handle_notification("vietqr", credit("CHUYEN TIEN", 185_000, "c-1")) \
        is CallbackOutcome.DUPLICATE
    assert len(world.store.reviews) == 2


def test_an_administrator_resolves_a_review_item_once_with_what_was_done(world: World) -> None:
    for index, note in enumerate(["CHUYEN TIEN", "ung ho"]):
        world.services.handle_notification("vietqr", credit(note, 185_000, f"c-{index}"))
        world.clock.advance(seconds=1)
    first, second = world.services.list_review_items(ADMIN, False, "", 0)[0]
    resolved = world.services.resolve_review_item(ADMIN, first.id, "  refunded to the payer, FT26030200077  ")
    assert (resolved.resolved_by, resolved.resolution) == ("operator", "refunded to the payer, FT26030200077")
    assert resolved.resolved_at == world.clock.now()
    assert [item.id for item in world.services.list_review_items(ADMIN, False, "", 0)[0]] == [second.id]
    both = world.services.list_review_items(ADMIN, True, "", 0)[0]
    assert [(item.id, item.resolution) for item in both] == [(first.id, resolved.resolution), (second.id, "")]
    world.clock.advance(minutes=1)
    again = world.services.resolve_review_item(ADMIN, first.id, "refunded to the payer, FT26030200077")
    assert again.resolved_at == resolved.resolved_at  # a retry changes nothing
    with pytest.raises(FailedPrecondition) as other_answer:
        world.services.resolve_review_item(ADMIN, first.id, "matched by hand")
    assert other_answer.value.reason == "REVIEW_ITEM_RESOLVED"


def test_resolving_a_review_item_needs_an_administrator_a_known_item_and_a_resolution(world: World) -> None:
    world.services.handle_notification("vietqr", credit("CHUYEN TIEN", 185_000, "c-1"))
    item = world.store.reviews[0]
    with pytest.raises(PermissionDenied):
        world.services.resolve_review_item(HCM, item.id, "refunded")
    with pytest.raises(InvalidArgument) as blank:
        world.services.resolve_review_item(ADMIN, item.id, "   ")
    assert [violation.field for violation in blank.value.violations] == ["resolution"]
    with pytest.raises(NotFound) as unknown:
        world.services.resolve_review_item(ADMIN, "no-such-item", "refunded")
    assert unknown.value.reason == "REVIEW_ITEM_NOT_FOUND"
    assert world.store.reviews[0].resolved_at is None


def test_a_credit_for_an_unknown_reference_is_held_for_review(world: World) -> None:
    unknown = new_reference()
    outcome = world.services.handle_notification("vietqr", credit(f"chuyen tien {unknown}", 5))
    assert outcome is CallbackOutcome.UNKNOWN_REFERENCE
    assert [item.reason for item in world.store.reviews] == ["unknown_reference"]


# -- status sweep and expiry ---------------------------------------------------------------------------------

def test_the_sweep_resolves_a_lost_callback_by_asking_the_connector(world: World) -> None:
    payment = world.create()
    world.services.start_channel(payment.reference, "bank")
    world.bank.settle(payment.reference, ConnectorStatus.SUCCEEDED)
    assert world.services.sweep_pending() == 0  # too early: the callback may still come
    world.clock.advance(minutes=3)
    assert world.services.sweep_pending() == 1
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED
    assert world.store.events[-1][1].source is EventSource.STATUS_QUERY
    world.clock.advance(minutes=3)
    assert world.services.sweep_pending() == 0


def test_a_transfer_query_counts_only_the_credits_no_notice_brought(world: World, monkeypatch) -> None:
    payment = world.create()
    note = f"thanh toan {payment.reference}"
    world.services.handle_notification("vietqr", credit(note, 100_000, "c-1"))   # its notice: FT-c-1
    # The 85,000 đồng notice is lost; the bank's credit list has both transfers.
    credits = (Credit("FT-c-1", 100_000), Credit("FT-c-2", 85_000),
               Credit("FT-elsewhere", 185_000, account=f"{HN_ACCOUNT.bank_bin}/{HN_ACCOUNT.account}"))
    monkeypatch.setattr(world.vietqr, "query_status", lambda *args, **kwargs: ConnectorResult(
        ConnectorStatus.SUCCEEDED, "FT-c-2", 185_000, credits=credits))
    assert world.services.refresh_status("vietqr", payment.reference) is CallbackOutcome.ACCEPTED
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED and stored.paid_amount == 185_000
    assert FLAG_REFUND_REQUIRED not in stored.flags
    # The lost notice arrives after all: the same transfer, already counted.
    assert world.services.handle_notification("vietqr", credit(note, 85_000, "c-2")) is CallbackOutcome.DUPLICATE
    assert world.stored(payment.id).paid_amount == 185_000


def test_a_partial_payment_found_by_the_sweep_is_recorded_while_it_stays_open(world: World, monkeypatch) -> None:
    payment = world.create()
    world.services.start_channel(payment.reference, "vietqr")
    monkeypatch.setattr(world.vietqr, "query_status", lambda *args, **kwargs: ConnectorResult(
        ConnectorStatus.PENDING, "FT-1", 100_000, credits=(Credit("FT-1", 100_000),)))
    world.clock.advance(minutes=3)
    world.services.sweep_pending()
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.PENDING and stored.paid_amount == 100_000


def test_a_status_answer_with_the_wrong_amount_is_reviewed_once_however_often_asked(world: World) -> None:
    payment = world.create()
    world.services.start_channel(payment.reference, "bank")
    world.bank.settle(payment.reference, ConnectorStatus.SUCCEEDED, amount=180_000)
    for _ in range(3):
        world.clock.advance(minutes=3)
        world.services.sweep_pending()
    assert world.stored(payment.id).status is PaymentStatus.PENDING
    assert [(item.reason, item.amount, item.payment_id) for item in world.store.reviews] == [
        ("amount_mismatch", 180_000, payment.id)]


def test_the_sweep_leaves_pending_payments_alone_and_skips_open_circuits(world: World) -> None:
    payment = world.create()
    world.services.start_channel(payment.reference, "bank")
    world.clock.advance(minutes=3)
    world.connectors.down.add("bank_a")
    assert world.services.sweep_pending() == 0 and "query_status" not in world.bank.calls
    world.connectors.down.clear()
    world.clock.advance(minutes=3)
    assert world.services.sweep_pending() == 0 and "query_status" in world.bank.calls
    assert world.stored(payment.id).status is PaymentStatus.PENDING


def test_expiry_closes_unpaid_payments_once_their_time_has_passed(world: World) -> None:
    soon = world.create("soon", expires_at=world.clock.now() + timedelta(minutes=10))
    later = world.create("later", expires_at=world.clock.now() + timedelta(hours=5))
    paid = world.create("paid", expires_at=world.clock.now() + timedelta(minutes=10))
    world.services.handle_notification("bank_a", result(paid.reference, 185_000))
    world.clock.advance(minutes=11)
    assert world.services.expire_due() == 1
    assert world.stored(soon.id).status is PaymentStatus.EXPIRED
    assert world.stored(later.id).status is PaymentStatus.CREATED
    assert world.store.events[-1][1].type is EventType.EXPIRED
    assert world.store.events[-1][1].source is EventSource.EXPIRY
    assert world.services.expire_due() == 0


def test_a_payment_paid_just_before_its_deadline_succeeds_instead_of_expiring(world: World) -> None:
    payment = world.create("last-second", expires_at=world.clock.now() + timedelta(minutes=10))
    world.services.start_channel(payment.reference, "bank")
    world.clock.advance(minutes=9, seconds=58)
    world.bank.settle(payment.reference, ConnectorStatus.SUCCEEDED)  # paid; its callback is still on the way
    world.clock.advance(seconds=3)
    assert world.services.expire_due() == 0
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED
    assert stored.paid_amount == payment.amount and not stored.flags
    types = [event.type for _, event in world.store.events if event.payment_id == payment.id]
    assert EventType.EXPIRED not in types and EventType.LATE_SUCCESS not in types
    assert world.store.events[-1][1].source is EventSource.STATUS_QUERY


def test_expiry_asks_a_pending_payment_s_connector_and_expires_it_when_still_unpaid(world: World) -> None:
    payment = world.create("unpaid", expires_at=world.clock.now() + timedelta(minutes=10))
    world.services.start_channel(payment.reference, "bank")
    world.clock.advance(minutes=11)
    assert world.services.expire_due() == 1
    assert world.bank.status_queries[-1].reference == payment.reference
    assert world.stored(payment.id).status is PaymentStatus.EXPIRED
    assert world.store.events[-1][1].source is EventSource.EXPIRY


def test_expiry_does_not_wait_on_a_connector_that_is_down_or_failing(world: World) -> None:
    behind_open_circuit = world.create("circuit", expires_at=world.clock.now() + timedelta(minutes=10))
    world.services.start_channel(behind_open_circuit.reference, "bank")
    world.clock.advance(minutes=11)
    world.connectors.down.add("bank_a")
    assert world.services.expire_due() == 1 and "query_status" not in world.bank.calls
    world.connectors.down.clear()
    failing = world.create("failing", expires_at=world.clock.now() + timedelta(minutes=10))
    world.services.start_channel(failing.reference, "bank")
    world.clock.advance(minutes=11)
    world.bank.fail_with = ConnectorErrorKind.TIMEOUT
    assert world.services.expire_due() == 1 and "query_status" in world.bank.calls
    assert world.stored(behind_open_circuit.id).status is PaymentStatus.EXPIRED
    assert world.stored(failing.id).status is PaymentStatus.EXPIRED


def test_a_transfer_note_naming_two_payments_is_held_for_review_not_credited_to_the_first(world: World) -> None:
    first, second = world.create("one"), world.create("two")
    outcome = world.services.handle_notification("vietqr", credit(f"{first.reference} {second.reference}", 185_000))
    assert outcome is CallbackOutcome.ACCEPTED
    assert [item.reason for item in world.store.reviews] == ["garbled_reference"]
    assert world.stored(first.id).paid_amount == world.stored(second.id).paid_amount == 0
