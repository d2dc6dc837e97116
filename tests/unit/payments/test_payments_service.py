"""Payment use cases over in-memory fakes: creation, idempotency, bad input, agency isolation, channels, refunds."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from payments_fakes import ADMIN, HCM, HN, HN_ACCOUNT, OTHER_ACCOUNT, T0, Caller, World

from payment_service.domain import reference as references
from payment_service.domain.commands import FeeLineInput
from payment_service.domain.connector import (
    CallbackOutcome,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
    InboundNotification,
    NotificationKind,
)
from payment_service.domain.model import EventSource, PaymentStatus
from payment_service.domain.vietqr import parse_payload
from payment_service.service_layer.ports import DeliveryState, OutboxKind, PaymentFilter
from servicekit.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable


def _fields(error: InvalidArgument) -> set[str]:
    return {violation.field for violation in error.violations}


def _nothing_stored(world: World) -> None:
    assert world.store.payments == {} and world.store.events == [] and world.store.outbox == {}


# -- create -------------------------------------------------------------------------------------------------

def test_create_stores_the_payment_and_returns_a_vietqr_payload_for_it(world: World) -> None:
    payment = world.create()
    assert payment.status is PaymentStatus.CREATED and payment.amount == 185_000
    assert references.is_valid(payment.reference)
    decoded = parse_payload(payment.qr_payload)
    assert (decoded.bank_bin, decoded.account, decoded.amount, decoded.dynamic) == ("970405", "7111000000001",
                                                                                   185_000, True)
    assert decoded.bill_number == payment.reference
    assert world.stored(payment.id).reference == payment.reference
    assert [event.type.value for _, event in world.store.events] == ["payment.created"]
    assert world.outbox() == []  # the agency is not called back about its own create


def test_the_same_request_returns_the_same_payment(world: World) -> None:
    first, replayed_first = world.services.create_payment(HCM, world.command("same"))
    second, replayed_second = world.services.create_payment(HCM, world.command("same"))
    assert (replayed_first, replayed_second) == (False, True)
    assert second.id == first.id and second.reference == first.reference and second.qr_payload == first.qr_payload
    assert len(world.store.payments) == 1


def test_the_same_key_with_a_different_body_is_refused_with_a_clear_reason(world: World) -> None:
    first = world.create("k")
    with pytest.raises(Conflict) as refused:
        world.services.create_payment(HCM, world.command("k", dossier_code="HS-OTHER"))
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED" and refused.value.metadata["payment_id"] == first.id
    assert len(world.store.payments) == 1


def test_the_same_key_in_another_agency_is_another_payment(world: World) -> None:
    hcm = world.create("shared")
    hn = world.create("shared", caller=HN, agency_code="HN", beneficiary_account=HN_ACCOUNT.account)
    assert hcm.id != hn.id


def test_a_retry_after_the_requested_expiry_passed_still_returns_the_payment(world: World) -> None:
    expiry = T0 + timedelta(minutes=30)
    first = world.create("k", expires_at=expiry)
    world.clock.advance(hours=1)
    again, replayed = world.services.create_payment(HCM, world.command("k", expires_at=expiry))
    assert replayed and again.id == first.id


def test_a_reference_collision_draws_a_new_reference(world: World) -> None:
    taken = world.create("first").reference
    drawn = iter([taken, references.new_reference()])
    world.services._new_reference = lambda: next(drawn)
    second = world.create("second")
    assert second.reference != taken and len(world.store.payments) == 2


BAD_INPUT = {
    "missing dossier code": ({"dossier_code": ""}, {"dossier_code"}),
    "missing procedure code": ({"procedure_code": ""}, {"procedure_code"}),
    "malformed national id": ({"payer_national_id": "07909000123X"}, {"payer.national_id"}),
    "missing payer name": ({"payer_name": "  "}, {"payer.name"}),
    "total does not add up": ({"total_amount": 185_001}, {"total_amount"}),
    "negative amount": ({"fee_lines": (FeeLineInput("phi", "P", "Phí", -5),), "total_amount": -5},
                        {"fee_lines[0].amount", "total_amount"}),
    "zero amount": ({"fee_lines": (FeeLineInput("phi", "P", "Phí", 0),), "total_amount": 0},
                    {"fee_lines[0].amount", "total_amount"}),
    "oversized amount": ({"fee_lines": (FeeLineInput("phi", "P", "Phí", 10**13),), "total_amount": 10**13},
                         {"fee_lines[0].amount", "total_amount"}),
    "unknown fee kind": ({"fee_lines": (FeeLineInput("unspecified", "P", "Phí", 185_000),)}, {"fee_lines[0].kind"}),
    "no fee lines": ({"fee_lines": ()}, {"fee_lines"}),
    "unknown beneficiary account": ({"beneficiary_account": "999999999"}, {"beneficiary.account"}),
    "another agency's account": ({"beneficiary_account": "7111000000101"}, {"beneficiary.account"}),
    "malformed bank bin": ({"beneficiary_bin": "97040"}, {"beneficiary.bank_bin"}),
    "expiry in the past": ({"expires_at": T0 - timedelta(minutes=5)}, {"expires_at"}),
    "expiry too far": ({"expires_at": T0 + timedelta(days=40)}, {"expires_at"}),
    "missing idempotency key": ({"key": ""}, {"idempotency_key"}),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_refused_field_by_field_and_nothing_is_stored(world: World, case: str) -> None:
    changes, fields = BAD_INPUT[case]
    with pytest.raises(InvalidArgument) as refused:
        world.services.create_payment(HCM, world.command(**{"key": "key-1", **changes}))
    assert _fields(refused.value) == fields
    _nothing_stored(world)


def test_an_unknown_agency_is_not_found_and_nothing_is_stored(world: World) -> None:
    stranger = Caller("x", "DN", frozenset({"payments.create"}))
    with pytest.raises(NotFound) as refused:
        world.services.create_payment(stranger, world.command(agency_code="DN"))
    assert refused.value.reason == "UNKNOWN_AGENCY"
    _nothing_stored(world)


def test_creating_needs_the_create_scope_and_an_agency(world: World) -> None:
    reader = Caller("x", "HCM", frozenset({"payments.read"}))
    with pytest.raises(PermissionDenied):
        world.services.create_payment(reader, world.command())
    with pytest.raises(PermissionDenied):
        world.services.create_payment(ADMIN, world.command())
    _nothing_stored(world)


# -- agency isolation, per use case -------------------------------------------------------------------------

def test_an_agency_cannot_read_change_or_list_another_agencys_payment(world: World) -> None:
    payment = world.create()
    attempts = {
        "get by id": lambda: world.services.get_payment(HN, payment.id),
        "get by reference": lambda: world.services.get_payment(HN, reference=payment.reference),
        "cancel": lambda: world.services.cancel_payment(HN, payment.id, "x"),
        "refund": lambda: world.services.refund_payment(HN, payment.id, 0, "r", ""),
        "list events": lambda: world.services.list_events(HN, payment.id, None, "", 0),
        "list other agency": lambda: world.services.list_payments(HN, PaymentFilter("HCM"), "", 0),
    }
    for name, attempt in attempts.items():
        with pytest.raises(PermissionDenied):
            attempt()
        assert world.stored(payment.id).status is PaymentStatus.CREATED, name
    listed, _ = world.services.list_payments(HN, PaymentFilter(None), "", 0)
    assert listed == []
    assert world.services.get_payment(ADMIN, payment.id).id == payment.id


def test_an_agency_cannot_redeliver_another_agencys_event(world: World) -> None:
    payment = world.create()
    world.services.cancel_payment(HCM, payment.id, "duplicate dossier")
    [entry] = world.outbox(OutboxKind.AGENCY_CALLBACK)
    with pytest.raises(PermissionDenied):
        world.services.redeliver_event(HN, entry.event_id)


def test_redelivering_a_success_also_retries_a_receipt_that_was_given_up_on(world: World) -> None:
    payment_id = _paid(world)
    [receipt] = world.outbox(OutboxKind.RECEIPT)
    [callback] = [entry for entry in world.outbox(OutboxKind.AGENCY_CALLBACK) if entry.event_id == receipt.event_id]
    with world.uow() as uow:
        uow.outbox.mark_failed(receipt.id, "wallet unreachable for 3 days", None)   # dead-lettered
        uow.outbox.mark_delivered(callback.id, T0)
        uow.commit()
    world.services.redeliver_event(HCM, receipt.event_id)
    [receipt] = world.outbox(OutboxKind.RECEIPT)
    assert receipt.status is DeliveryState.PENDING and world.stored(payment_id).status is PaymentStatus.SUCCEEDED


def test_redelivering_never_resends_a_receipt_already_issued(world: World) -> None:
    _paid(world)
    [receipt] = world.outbox(OutboxKind.RECEIPT)
    with world.uow() as uow:
        uow.outbox.mark_delivered(receipt.id, T0)
        uow.commit()
    world.services.redeliver_event(HCM, receipt.event_id)
    assert world.outbox(OutboxKind.RECEIPT)[0].status is DeliveryState.DELIVERED


def test_missing_payments_and_events_are_not_found(world: World) -> None:
    with pytest.raises(NotFound):
        world.services.get_payment(HCM, "nope")
    with pytest.raises(NotFound):
        world.services.redeliver_event(HCM, "nope")


# -- listing ------------------------------------------------------------------------------------------------

def test_list_filters_by_dossier_and_status_and_pages_with_a_cursor(world: World) -> None:
    made = []
    for index in range(5):
        world.clock.advance(seconds=1)
        made.append(world.create(f"k{index}", dossier_code=f"HS-{index % 2}"))
    world.services.cancel_payment(HCM, made[0].id, "x")
    first, token = world.services.list_payments(HCM, PaymentFilter(None), "", 2)
    second, token2 = world.services.list_payments(HCM, PaymentFilter(None), token, 2)
    third, token3 = world.services.list_payments(HCM, PaymentFilter(None), token2, 2)
    assert [p.id for p in first + second + third] == [p.id for p in reversed(made)]
    assert token3 == ""
    dossier, _ = world.services.list_payments(HCM, PaymentFilter(None, dossier_code="HS-1"), "", 0)
    assert {p.id for p in dossier} == {made[1].id, made[3].id}
    cancelled, _ = world.services.list_payments(HCM, PaymentFilter(None, status=PaymentStatus.CANCELLED), "", 0)
    assert [p.id for p in cancelled] == [made[0].id]
    window, _ = world.services.list_payments(HCM, PaymentFilter(None, created_after=made[3].created_at), "", 0)
    assert {p.id for p in window} == {made[3].id, made[4].id}
    with pytest.raises(InvalidArgument):
        world.services.list_payments(HCM, PaymentFilter(None), "not-a-token!", 0)


# -- cancel, channels and routing ---------------------------------------------------------------------------

def test_cancel_writes_the_event_and_its_callback_in_one_commit_and_wakes_the_dispatcher(world: World) -> None:
    payment = world.create()
    cancelled = world.services.cancel_payment(HCM, payment.id, "citizen withdrew")
    assert cancelled.status is PaymentStatus.CANCELLED
    [entry] = world.outbox()
    assert entry.kind is OutboxKind.AGENCY_CALLBACK and '"payment.cancelled"' in entry.payload
    assert world.notifier.count == 1
    with pytest.raises(FailedPrecondition):
        world.services.cancel_payment(HCM, payment.id, "again")


def test_channel_links_list_vietqr_and_each_allowed_channel_once(world: World) -> None:
    payment = world.create()
    links = dict(world.services.channel_links(payment))
    assert set(links) == {"vietqr", "bank"}
    assert links["bank"].endswith(f"/pay/{payment.reference}?channel=bank")


def test_starting_a_channel_uses_the_first_connector_by_priority(world: World) -> None:
    payment = world.create()
    url = world.services.start_channel(payment.reference, "bank")
    assert url.startswith("https://bank_a.")
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.PENDING and stored.connector_code == "bank_a"


def test_routing_fails_over_when_a_circuit_is_open_or_the_bank_is_down(world: World) -> None:
    payment = world.create()
    world.connectors.down.add("bank_a")
    assert world.services.start_channel(payment.reference, "bank").startswith("https://bank_b.")
    assert world.bank.calls == []
    other = world.create("k2")
    world.connectors.down.clear()
    world.bank.fail_with = ConnectorErrorKind.UNAVAILABLE
    assert world.services.start_channel(other.reference, "bank").startswith("https://bank_b.")
    assert world.stored(other.id).connector_code == "bank_b"
    world.backup.fail_with = ConnectorErrorKind.TIMEOUT
    with pytest.raises(Unavailable):
        world.services.start_channel(world.create("k3").reference, "bank")


def test_a_refused_order_does_not_fail_over(world: World) -> None:
    payment = world.create()
    world.bank.fail_with = ConnectorErrorKind.REJECTED
    with pytest.raises(FailedPrecondition):
        world.services.start_channel(payment.reference, "bank")
    assert world.backup.calls == [] and world.stored(payment.id).status is PaymentStatus.CREATED


# -- refunds ------------------------------------------------------------------------------------------------

def _paid(world: World) -> str:
    payment = world.create()
    world.services.start_channel(payment.reference, "bank")
    world.bank.settle(payment.reference, ConnectorStatus.SUCCEEDED)
    world.services.refresh_status("bank_a", payment.reference)
    assert world.stored(payment.id).status is PaymentStatus.SUCCEEDED
    return payment.id


def test_refunds_go_through_the_connector_and_are_idempotent_per_key(world: World) -> None:
    payment_id = _paid(world)
    refunded, refund = world.services.refund_payment(HCM, payment_id, 85_000, "r-1", "fee waived")
    assert refunded.status is PaymentStatus.PARTIALLY_REFUNDED and refund.amount == 85_000
    _, same = world.services.refund_payment(HCM, payment_id, 85_000, "r-1", "fee waived")
    assert same.id == refund.id and len(world.bank.refunds) == 1
    done, _ = world.services.refund_payment(HCM, payment_id, 0, "r-2", "rest")
    assert done.status is PaymentStatus.REFUNDED and world.bank.refunds[-1][1] == 100_000


def test_a_refund_retried_after_a_lost_answer_asks_the_bank_under_the_same_refund_id(world: World,
                                                                                      monkeypatch) -> None:
    payment_id = _paid(world)
    asked: list[str] = []
    answer_refund = world.bank.refund

    def refund_then_lose_the_first_answer(*args, **kwargs):
        asked.append(args[3])
        if len(asked) == 1:  # the bank refunds, but its answer never arrives
            raise ConnectorError(ConnectorErrorKind.TIMEOUT, "read timed out")
        return answer_refund(*args, **kwargs)

    monkeypatch.setattr(world.bank, "refund", refund_then_lose_the_first_answer)
    with pytest.raises(Unavailable):
        world.services.refund_payment(HCM, payment_id, 85_000, "r-1", "fee waived")
    assert world.stored(payment_id).refunded_amount == 0   # nothing recorded without the bank's answer
    _, refund = world.services.refund_payment(HCM, payment_id, 85_000, "r-1", "fee waived")
    # The bank keys refunds on this id, so it answers the retry with the refund it already made.
    assert asked == [refund.id, refund.id]
    world.services.refund_payment(HCM, payment_id, 10_000, "r-2", "another refund")
    assert asked[-1] != refund.id


def test_refunding_more_than_paid_or_an_unpaid_payment_is_refused_before_the_bank_is_asked(world: World) -> None:
    payment_id = _paid(world)
    with pytest.raises(InvalidArgument):
        world.services.refund_payment(HCM, payment_id, 185_001, "r", "")
    with pytest.raises(FailedPrecondition):
        world.services.refund_payment(HCM, world.create("unpaid").id, 1, "r", "")
    assert world.bank.refunds == []


def test_refunds_need_a_key(world: World) -> None:
    with pytest.raises(InvalidArgument):
        world.services.refund_payment(HCM, _paid(world), 1, "", "")


def test_a_success_from_a_status_refresh_is_sourced_as_a_status_query(world: World) -> None:
    payment_id = _paid(world)
    last = world.store.events[-1][1]
    assert last.source is EventSource.STATUS_QUERY and last.payment_id == payment_id


def test_the_other_account_of_an_agency_is_accepted(world: World) -> None:
    payment = world.create(beneficiary_bin=OTHER_ACCOUNT.bank_bin, beneficiary_account=OTHER_ACCOUNT.account)
    assert parse_payload(payment.qr_payload).bank_bin == "970415"


def test_a_payment_whose_connector_cannot_refund_is_refused_without_change(world: World) -> None:
    payment = world.create()
    notice = InboundNotification(NotificationKind.ACCOUNT_CREDITED, "", ConnectorStatus.SUCCEEDED, 185_000, "FT1",
                                 "c-1", transfer_note=payment.reference)
    world.services.handle_notification("vietqr", notice)
    with pytest.raises(FailedPrecondition) as refused:
        world.services.refund_payment(HCM, payment.id, 0, "r", "")
    assert refused.value.reason == "REFUND_NOT_SUPPORTED"
    stored = world.stored(payment.id)
    assert stored.status is PaymentStatus.SUCCEEDED and stored.refunded_amount == 0


def _token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@pytest.mark.parametrize("token", [_token({"a": 1}), _token(["not a time", "x"]), _token([1]), _token("7"),
                                   _token(-1), _token(True), "%%%"])
def test_a_page_token_of_the_wrong_shape_is_the_callers_mistake_on_every_list(world: World, token: str) -> None:
    calls = [
        lambda: world.services.list_payments(HCM, PaymentFilter("HCM"), token, 10),
        lambda: world.services.list_events(HCM, "", None, token, 10),
        lambda: world.services.list_review_items(ADMIN, False, token, 10),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument) as refused:
            call()
        assert [violation.field for violation in refused.value.violations] == ["page_token"]


def _refund_result(payment_id: str, world: World, refund_id: str, status: ConnectorStatus,
                   notification_id: str = "rr-1") -> InboundNotification:
    reference = world.stored(payment_id).reference
    return InboundNotification(NotificationKind.REFUND_RESULT, reference, status, 85_000, "RF-1", notification_id,
                               refund_id=refund_id)


def test_a_refund_the_bank_reports_failed_is_refundable_again_flagged_and_reviewed(world: World) -> None:
    payment_id = _paid(world)
    _, refund = world.services.refund_payment(HCM, payment_id, 85_000, "r-1", "fee waived")
    assert world.stored(payment_id).status is PaymentStatus.PARTIALLY_REFUNDED
    outcome = world.services.handle_notification("bank_a", _refund_result(payment_id, world, refund.id,
                                                                          ConnectorStatus.FAILED))
    assert outcome is CallbackOutcome.ACCEPTED
    stored = world.stored(payment_id)
    assert (stored.status, stored.refunded_amount, stored.refundable_amount) == (PaymentStatus.SUCCEEDED, 0, 185_000)
    assert "refund_failed" in stored.flags
    assert [(item.reason, item.payment_id) for item in world.store.reviews] == [("refund_failed", payment_id)]
    with world.uow() as uow:
        assert uow.refunds.by_id(refund.id).status == "failed"
    # The agency hears of it, as of every change to its payment.
    assert json.loads(world.outbox(OutboxKind.AGENCY_CALLBACK)[-1].payload)["type"] == "payment.refund_failed"
    # The bank's retry of the notice, or a later contradicting one, changes nothing more.
    for notification_id, status in (("rr-1", ConnectorStatus.FAILED), ("rr-2", ConnectorStatus.SUCCEEDED)):
        assert world.services.handle_notification("bank_a", _refund_result(
            payment_id, world, refund.id, status, notification_id)) is CallbackOutcome.DUPLICATE
    assert world.stored(payment_id).refunded_amount == 0 and len(world.store.reviews) == 1


def test_a_refund_the_bank_reports_done_is_recorded_and_changes_nothing_else(world: World) -> None:
    payment_id = _paid(world)
    _, refund = world.services.refund_payment(HCM, payment_id, 85_000, "r-1", "fee waived")
    world.services.handle_notification("bank_a", _refund_result(payment_id, world, refund.id,
                                                               ConnectorStatus.SUCCEEDED))
    with world.uow() as uow:
        assert uow.refunds.by_id(refund.id).status == "succeeded"
    stored = world.stored(payment_id)
    assert (stored.status, stored.refunded_amount) == (PaymentStatus.PARTIALLY_REFUNDED, 85_000)
    assert world.store.reviews == []


def test_a_refund_result_naming_another_payments_refund_changes_nothing(world: World) -> None:
    paid_here = _paid(world)
    _, refund = world.services.refund_payment(HCM, paid_here, 85_000, "r-1", "fee waived")
    paid_there = world.create("other").id
    outcome = world.services.handle_notification("bank_a", _refund_result(paid_there, world, refund.id,
                                                                          ConnectorStatus.FAILED))
    assert outcome is CallbackOutcome.UNKNOWN_REFERENCE
    assert world.stored(paid_here).refunded_amount == 85_000 and world.store.reviews == []


def test_a_refund_result_for_a_refund_whose_answer_was_lost_is_held_for_review(world: World) -> None:
    payment_id = _paid(world)   # the refund call timed out and rolled back: no refund row, money may have moved
    notice = _refund_result(payment_id, world, "a" * 32, ConnectorStatus.FAILED)
    assert world.services.handle_notification("bank_a", notice) is CallbackOutcome.ACCEPTED
    assert [(item.reason, item.payment_id) for item in world.store.reviews] == [("unknown_refund", payment_id)]
    assert world.services.handle_notification("bank_a", notice) is CallbackOutcome.DUPLICATE
    assert len(world.store.reviews) == 1
