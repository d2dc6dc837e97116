"""The payer's page over the payment service's in-memory fakes: fees, transfer details, channels, the status
document, the e-receipt once paid, and nothing for a code that is not a payment."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from payments_fakes import World, make_world

from payment_service.domain.connector import ConnectorStatus, InboundNotification, NotificationKind
from payment_service.domain.model import Payer, Payment
from payment_service.entrypoints.pages import mount_payment_pages


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def client(world: World) -> Any:
    app = Flask("payer-pages-test")
    mount_payment_pages(app, world.services)
    return app.test_client()


def pay(world: World, payment: Payment) -> None:
    """The collecting bank reports the transfer, as a VietQR credit naming the reference in its note."""
    world.services.handle_notification("vietqr", InboundNotification(
        NotificationKind.ACCOUNT_CREDITED, "", ConnectorStatus.SUCCEEDED, payment.amount, "FT26061000001",
        "credit-1", transfer_note=f"{payment.reference} le phi"))


def test_the_page_spells_out_fees_transfer_and_channels_but_not_the_payers_id(world: World, client: Any) -> None:
    payment = world.create()
    page = client.get(f"/pay/{payment.reference}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Agency HCM" in text and "HS-2026-000123" in text and "1.000046" in text
    assert "Lệ phí cấp giấy phép" in text and "135.000 đồng" in text and "50.000 đồng" in text
    assert '<td class="amount" id="total">185.000 đồng</td>' in text
    transfer = text.split('id="transfer-details"')[1].split("</dl>")[0]
    assert "Agribank" in transfer and "7111000000001" in transfer and "KBNN TP Ho Chi Minh" in transfer
    assert f"<strong>{payment.reference}" in transfer          # the note starts with the payment code
    assert "079090001234" not in text and "••••••••1234" in text
    assert f'src="/pay/{payment.reference}/qr.png"' in text
    assert f'href="/pay/{payment.reference}?channel=bank"' in text and "Thanh toán qua Internet Banking" in text
    assert 'data-final="false"' in text and 'data-status="created"' in text


def test_the_status_document_and_the_page_follow_the_payment_to_its_receipt(world: World, client: Any) -> None:
    payment = world.create()
    assert client.get(f"/pay/{payment.reference}/status.json").get_json() == {"status": "created", "final": False}
    pay(world, payment)
    status = client.get(f"/pay/{payment.reference}/status.json")
    assert status.get_json() == {"status": "succeeded", "final": True}
    assert status.headers["Cache-Control"] == "no-store"
    text = client.get(f"/pay/{payment.reference}").get_data(as_text=True)
    # docs/payments.md: a receipt is numbered BL<yyyymmdd><reference>, the day it was paid (here 2 March 2026).
    assert f"BL20260302{payment.reference}" in text
    assert "Biên lai điện tử" in text and "FT26061000001" in text and "Đã thanh toán" in text
    assert 'id="transfer-details"' not in text and "?channel=" not in text   # nothing left to pay
    assert 'data-final="true"' in text
    client.set_cookie("dvc_lang", "en")
    english = client.get(f"/pay/{payment.reference}").get_data(as_text=True)
    assert "E-receipt" in english and "185,000 VND" in english and '<html lang="en">' in english


def test_a_code_that_is_not_a_payment_shows_nothing(world: World, client: Any) -> None:
    payment = world.create()
    typo = payment.reference[:-1] + ("A" if payment.reference[-1] != "A" else "B")   # the check character fails
    for code in (typo, "DVC" + "0" * 13, "hello"):
        answer = client.get(f"/pay/{code}")
        assert answer.status_code == 404
        assert payment.reference not in answer.get_data(as_text=True)
        assert client.get(f"/pay/{code}/status.json").status_code == 404
    assert client.get(f"/pay/{payment.reference.lower()}").status_code == 200   # as typed from a notice


def test_channels_send_the_payer_on_or_back_to_the_page(world: World, client: Any) -> None:
    payment = world.create()
    started = client.get(f"/pay/{payment.reference}?channel=bank")
    assert started.status_code == 302
    assert started.headers["Location"] == f"https://bank_a.fake.test/pay/{payment.reference}"
    unavailable = client.get(f"/pay/{payment.reference}?channel=crypto")
    assert unavailable.status_code == 503 and "Cách thanh toán này tạm thời không dùng được" in \
        unavailable.get_data(as_text=True)
    pay(world, payment)
    closed = client.get(f"/pay/{payment.reference}?channel=bank")
    assert closed.status_code == 303 and closed.headers["Location"] == f"/pay/{payment.reference}"


def test_the_gateways_return_address_finds_the_payment_among_their_parameters(world: World, client: Any) -> None:
    payment = world.create()
    back = client.get("/pay/return", query_string={"vnp_Amount": "18500000", "vnp_TxnRef": payment.reference,
                                                   "vnp_ResponseCode": "00"})
    assert back.status_code == 303 and back.headers["Location"] == f"/pay/{payment.reference}"
    assert client.get("/pay/return", query_string={"vnp_TxnRef": "nothing"}).status_code == 404


def credit(world: World, payment: Payment, amount: int, transaction: str) -> None:
    """The collecting bank reports a VietQR transfer of ``amount`` naming the reference in its note."""
    world.services.handle_notification("vietqr", InboundNotification(
        NotificationKind.ACCOUNT_CREDITED, "", ConnectorStatus.SUCCEEDED, amount, transaction, f"credit-{transaction}",
        transfer_note=f"{payment.reference} le phi"))


def test_after_a_short_transfer_the_page_asks_only_for_the_rest(world: World, client: Any) -> None:
    payment = world.create()
    credit(world, payment, 100_000, "FT26061000002")
    assert world.stored(payment.id).status.value == "pending"
    text = client.get(f"/pay/{payment.reference}").get_data(as_text=True)
    partly = text.split('id="partly-paid"')[1].split("</div>")[0]
    assert "100.000 đồng" in partly and "185.000 đồng" in partly and "85.000 đồng" in partly
    transfer = text.split('id="transfer-details"')[1].split("</dl>")[0]
    assert "<strong>85.000 đồng</strong>" in transfer and "185.000" not in transfer
    assert f"<strong>{payment.reference}" in transfer                   # the same note, so it is matched
    image = text.split('<div class="qr">')[1].split("</div>")[0]
    # A new image address per amount due, so no cache anywhere can show the old amount.
    assert f'src="/pay/{payment.reference}/qr.png?due=85000"' in image
    assert "chuyển 85.000 đồng" in image and "185.000" not in image   # the image's alt text
    assert '<td class="amount" id="total">185.000 đồng</td>' in text    # what the fees are does not change


def test_the_receipt_names_agency_and_payer_as_signed_not_as_they_are_now(world: World, client: Any) -> None:
    payment = world.create()
    pay(world, payment)
    # The agency renames itself after the receipt was signed; the payment's own record is left as it was.
    world.store.agencies["HCM"].name = "Sở Tư pháp (tên mới)"
    world.store.payments[payment.id].payer = Payer("Tên Khác", "079090005678")
    text = client.get(f"/pay/{payment.reference}").get_data(as_text=True)
    receipt = text.split('id="receipt"')[1].split("</section>")[0]
    assert "Agency HCM" in receipt and "tên mới" not in receipt
    assert "Nguyễn Văn An" in receipt and "••••••••1234" in receipt
    assert "Tên Khác" not in receipt and "5678" not in receipt


def test_a_stored_receipt_that_cannot_be_read_shows_as_being_prepared(world: World, client: Any) -> None:
    payment = world.create()
    # A payment taken before names were checked for what XML can carry: its receipt is not well-formed XML.
    world.store.payments[payment.id].payer = Payer("Nguyễn Văn An\ufffe", payment.payer.national_id)
    pay(world, payment)
    assert "\ufffe".encode() in world.store.receipts[payment.id]
    answer = client.get(f"/pay/{payment.reference}")
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Đã thanh toán" in text
    assert "Biên lai điện tử đang được lập." in text and 'id="receipt"' not in text
    for broken in (b"<BienLaiDienTu", b'{"receipt": []}', b"[1, 2]"):
        world.store.receipts[payment.id] = broken
        assert "Biên lai điện tử đang được lập." in client.get(f"/pay/{payment.reference}").get_data(as_text=True)
