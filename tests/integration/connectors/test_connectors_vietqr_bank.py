"""VietQR transfers through the NAPAS collecting-bank sandbox: scan, signed credit notice, damaged notes, credits
query and the signed statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests
from connectors_it import World, wait_until

from payment_service.domain.connector import ConnectorStatus, NotificationKind
from payment_service.domain.reference import new_reference
from payment_service.domain.vietqr import payment_qr
from payment_service.sandbox.common import VIETNAM

ACCOUNT = {"bin": "970436", "number": "0011001234567"}


def transfer(world: World, amount: int, note: str) -> dict:
    answer = requests.post(f"{world.url('vietqr')}/sandbox/transfers", timeout=5,
                           json={"account": ACCOUNT, "amount": amount, "note": note})
    assert answer.status_code == 201, answer.text
    world.sandbox("vietqr").sender.wait_idle(10)
    return dict(answer.json())


def credits_for(world: World, transaction_id: str) -> list:
    with world.core.lock:
        return [n for _, n in world.core.received if n.provider_reference == transaction_id]


def test_scanning_the_payment_qr_credits_the_account_with_a_matchable_notice(world: World):
    reference = new_reference()
    code = payment_qr("970436", "0011001234567", 185_000, reference, "Le phi cap GPLX")
    answer = requests.post(f"{world.url('vietqr')}/sandbox/scan", json={"qr": code}, timeout=5)
    assert answer.status_code == 201, answer.text
    [notification] = wait_until(lambda: world.core.about(reference))
    assert notification.kind is NotificationKind.ACCOUNT_CREDITED
    assert (notification.amount, notification.status) == (185_000, ConnectorStatus.SUCCEEDED)
    assert notification.transfer_note.startswith(reference)
    world.sandbox("vietqr").sender.wait_idle(10)
    [delivery] = world.view("vietqr", answer.json()["reference"])["deliveries"]
    assert (delivery["status"], delivery["body"]) == (200, '{"code": "OK"}')


def test_damaged_notes_the_way_banks_damage_them(world: World):
    reference = new_reference()
    truncated = transfer(world, 100_062, f"{reference} le phi")
    garbled = transfer(world, 100_063, f"{reference} thanh toan le phi")
    missing = transfer(world, 100_061, f"{reference} le phi")
    [from_truncated] = wait_until(lambda: credits_for(world, truncated["reference"]))
    [from_garbled] = wait_until(lambda: credits_for(world, garbled["reference"]))
    [from_missing] = wait_until(lambda: credits_for(world, missing["reference"]))
    assert from_truncated.reference == "" and reference[:6] in from_truncated.transfer_note
    assert from_garbled.reference == reference and from_garbled.transfer_note != f"{reference} thanh toan le phi"
    assert from_missing.reference == "" and from_missing.transfer_note == ""


def test_a_failed_transfer_credits_nothing(world: World):
    failed = transfer(world, 100_013, f"{new_reference()} le phi")
    assert failed["status"] == "FAILED"
    assert credits_for(world, failed["reference"]) == []


def test_status_sums_partial_transfers_and_the_statement_lists_them(world: World):
    reference = new_reference()
    since = datetime.now(UTC) - timedelta(seconds=5)
    connector = world.connector("vietqr")
    first = transfer(world, 60_000, f"{reference} dot 1")
    partial = connector.query_status(reference, amount=100_000, created_at=since)
    assert (partial.status, partial.amount) == (ConnectorStatus.PENDING, 60_000)
    second = transfer(world, 40_000, f"CK {reference.lower()} dot 2")
    full = connector.query_status(reference, amount=100_000, created_at=since)
    assert (full.status, full.amount) == (ConnectorStatus.SUCCEEDED, 100_000)
    assert {credit.provider_reference for credit in full.credits} == {first["reference"], second["reference"]}
    assert sum(credit.amount for credit in full.credits) == 100_000
    lines = [line for line in connector.fetch_settlement(datetime.now(UTC).astimezone(VIETNAM).date())
             if line.reference == reference]
    assert sorted(line.amount for line in lines) == [40_000, 60_000]
