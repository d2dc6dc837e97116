"""The core hands connectors what they need to find a payment: the token create returned, and its creation time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from payments_fakes import ADMIN, HCM, T0, World

from payment_service.adapters.fake_connector import StatusQuery
from payment_service.domain.connector import ConnectorErrorKind, ConnectorStatus, SettlementLine
from payment_service.domain.model import PaymentStatus


def _sweep(world: World, reference: str) -> None:
    world.clock.advance(minutes=3)
    world.services.sweep_pending()


def _refresh(world: World, reference: str) -> None:
    world.services.refresh_status("bank_a", reference)


def _reconcile(world: World, reference: str) -> None:
    # The bank's file says paid while the ledger says pending: reconciliation asks the bank.
    day = date(2026, 3, 2)
    world.bank.settlements[day] = [SettlementLine(reference, "T1", 185_000, ConnectorStatus.SUCCEEDED, day)]
    world.reporting.import_settlement(ADMIN, "bank_a", day.isoformat(), b"", "")


@pytest.mark.parametrize("ask", [_sweep, _refresh, _reconcile], ids=["sweep", "refresh", "reconciliation"])
def test_every_status_query_passes_the_token_create_returned(world: World,
                                                             ask: Callable[[World, str], None]) -> None:
    payment = world.create()  # at T0
    world.clock.advance(minutes=1)
    world.services.start_channel(payment.reference, "bank")
    issued_token = world.bank.charges[payment.reference].provider_reference
    assert issued_token
    world.bank.settle(payment.reference, ConnectorStatus.SUCCEEDED)
    ask(world, payment.reference)
    assert world.bank.status_queries == [StatusQuery(payment.reference, 185_000, T0, issued_token)]
    assert world.stored(payment.id).status is PaymentStatus.SUCCEEDED


def test_the_token_is_kept_for_queries_and_not_shown_as_the_transaction_id(world: World) -> None:
    payment = world.create()
    world.services.start_channel(payment.reference, "bank")
    stored = world.stored(payment.id)
    assert stored.checkout_reference == world.bank.charges[payment.reference].provider_reference
    assert stored.provider_reference == ""  # agencies see the counterpart's transaction id, once there is one


def test_a_payment_sent_on_to_another_connector_is_queried_with_that_connectors_token(world: World) -> None:
    payment = world.create()
    world.services.start_channel(payment.reference, "bank")
    world.bank.fail_with = ConnectorErrorKind.UNAVAILABLE  # the payer comes back while bank A is down
    world.services.start_channel(payment.reference, "bank")
    backup_token = world.backup.charges[payment.reference].provider_reference
    assert backup_token != world.bank.charges[payment.reference].provider_reference
    world.clock.advance(minutes=3)
    world.services.sweep_pending()
    assert [query.provider_reference for query in world.backup.status_queries] == [backup_token]


def test_a_refund_passes_the_payments_creation_time_and_transaction_id(world: World) -> None:
    payment = world.create()  # at T0
    world.clock.advance(hours=2)
    world.services.start_channel(payment.reference, "bank")
    world.bank.settle(payment.reference, ConnectorStatus.SUCCEEDED)
    world.services.refresh_status("bank_a", payment.reference)
    transaction_id = world.bank.charges[payment.reference].provider_reference
    world.services.refund_payment(HCM, payment.id, 50_000, "r-1", "fee waived")
    (request,) = world.bank.refund_requests
    assert (request.reference, request.provider_reference, request.amount, request.created_at) == (
        payment.reference, transaction_id, 50_000, T0)
