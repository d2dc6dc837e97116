"""QR images of payments: rendered on first request (never on the create path) and cached by what they encode."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from payment_service.domain import vietqr
from payment_service.domain.model import OPEN_STATUSES, Payment
from payment_service.service_layer.access import SCOPE_READ, Caller
from payment_service.service_layer.ports import QrState, UnitOfWorkFactory
from servicekit.errors import NotFound

PNG = "image/png"
SVG = "image/svg+xml"


def payload_due(payment: Payment | QrState) -> str:
    """The VietQR payload a payer should scan now: the payment's own, or, once a short transfer left it open, the
    same code asking only for what is still owed, so the payer does not send the full amount a second time."""
    remaining = payment.amount - payment.paid_amount
    if payment.status in OPEN_STATUSES and 0 < remaining < payment.amount:
        return vietqr.with_amount(payment.qr_payload, remaining)
    return payment.qr_payload


@dataclass(frozen=True)
class QrImage:
    """One payment's QR code: whose it is, what it encodes, and its PNG."""

    payment_id: str
    agency_code: str
    reference: str
    payload: str
    png: bytes


class QrImages:
    """A bounded LRU of rendered PNGs by the payload they encode, so a payer reloading the page or a provincial
    portal embedding the image costs one render per code per replica. The payment itself is read on every request:
    a partial credit changes the code it must show, and an image of the old amount must never be served."""

    def __init__(self, uow_factory: UnitOfWorkFactory, render_png: Callable[[str], bytes],
                 render_svg: Callable[[str], str], capacity: int = 4096) -> None:
        self._uow_factory = uow_factory
        self._render_png = render_png
        self._render_svg = render_svg
        self._capacity = capacity
        self._png_by_payload: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def _png(self, payload: str) -> bytes:
        with self._lock:
            png = self._png_by_payload.get(payload)
            if png is not None:
                self._png_by_payload.move_to_end(payload)
                return png
        png = self._render_png(payload)  # outside the lock: a render must not hold up cache hits
        with self._lock:
            self._png_by_payload[payload] = png
            while len(self._png_by_payload) > self._capacity:
                self._png_by_payload.popitem(last=False)
        return png

    def _load(self, payment_id: str = "", reference: str = "") -> QrImage:
        with self._uow_factory() as uow:
            payment = uow.payments.qr_state(payment_id=payment_id, reference=reference.strip().upper())
        if payment is None:
            raise NotFound(f"no payment {payment_id or reference!r}", reason="PAYMENT_NOT_FOUND")
        payload = payload_due(payment)
        return QrImage(payment.id, payment.agency_code, payment.reference, payload, self._png(payload))

    def by_payment_id(self, payment_id: str) -> QrImage:
        return self._load(payment_id=payment_id)

    def by_reference(self, reference: str) -> QrImage:
        """For the public payer page: the reference is printed on the payment notice."""
        return self._load(reference=reference)

    def render_qr_png_for(self, payment_id: str) -> bytes:
        """The PNG of a payment (benchmarks measure this path)."""
        return self.by_payment_id(payment_id).png

    def for_caller(self, caller: Caller, payment_id: str, svg: bool) -> tuple[str, bytes, str]:
        """(content type, image, payload) of one of the caller's payments."""
        caller.require(SCOPE_READ)
        image = self.by_payment_id(payment_id)
        caller.check_agency(image.agency_code)
        if svg:
            return SVG, self._render_svg(image.payload).encode(), image.payload
        return PNG, image.png, image.payload
