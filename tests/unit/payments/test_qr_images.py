"""The QR image of a payment, as /pay/<reference>/qr.png and GetPaymentQr serve it: after a short transfer it asks
only for what is still owed, even when the full-amount image was cached before."""

from __future__ import annotations

import io

import zxingcpp
from payments_fakes import HCM, World, make_world
from PIL import Image

from payment_service.adapters.qr_png import render_png, render_svg
from payment_service.domain.connector import ConnectorStatus, InboundNotification, NotificationKind
from payment_service.domain.vietqr import parse_payload
from payment_service.service_layer.qr_images import QrImages


def decoded(png: bytes) -> str:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    return str(found[0].text)


def credit(world: World, reference: str, amount: int, transaction: str) -> None:
    world.services.handle_notification("vietqr", InboundNotification(
        NotificationKind.ACCOUNT_CREDITED, "", ConnectorStatus.SUCCEEDED, amount, transaction, f"credit-{transaction}",
        transfer_note=f"{reference} le phi"))


def test_a_partly_paid_payments_image_asks_for_the_rest_with_the_same_reference_and_note() -> None:
    world = make_world()
    images = QrImages(world.services.uow_factory, render_png, render_svg)
    payment = world.create()
    before = parse_payload(decoded(images.by_reference(payment.reference).png))   # cached at the full amount
    assert before.amount == 185_000

    credit(world, payment.reference, 100_000, "FT1")
    image = images.by_reference(payment.reference)
    after = parse_payload(decoded(image.png))
    assert image.payload == decoded(image.png)
    assert after.amount == 85_000
    assert (after.bank_bin, after.account, after.bill_number, after.purpose, after.dynamic) == \
        (before.bank_bin, before.account, before.bill_number, before.purpose, True)
    content_type, _, payload = images.for_caller(HCM, payment.id, svg=True)
    assert content_type == "image/svg+xml" and parse_payload(payload).amount == 85_000

    credit(world, payment.reference, 60_000, "FT2")
    assert parse_payload(images.by_payment_id(payment.id).payload).amount == 25_000
    credit(world, payment.reference, 25_000, "FT3")                       # paid: the payment's own code again
    assert images.by_reference(payment.reference).payload == payment.qr_payload
