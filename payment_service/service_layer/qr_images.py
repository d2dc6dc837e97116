"""QR images of payments: rendered on first request (never on the create path) and cached per payment."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from payment_service.service_layer.access import SCOPE_READ, Caller
from payment_service.service_layer.ports import UnitOfWorkFactory
from servicekit.errors import NotFound

PNG = "image/png"
SVG = "image/svg+xml"


@dataclass(frozen=True)
class QrImage:
    """One payment's QR code: whose it is, what it encodes, and its PNG."""

    payment_id: str
    agency_code: str
    reference: str
    payload: str
    png: bytes


class QrImages:
    """A bounded LRU of rendered PNGs by payment id (and reference), so a payer reloading the page or a
    provincial portal embedding the image costs one render per payment per replica."""

    def __init__(self, uow_factory: UnitOfWorkFactory, render_png: Callable[[str], bytes],
                 render_svg: Callable[[str], str], capacity: int = 4096) -> None:
        self._uow_factory = uow_factory
        self._render_png = render_png
        self._render_svg = render_svg
        self._capacity = capacity
        self._by_id: OrderedDict[str, QrImage] = OrderedDict()
        self._id_by_reference: dict[str, str] = {}
        self._lock = threading.Lock()

    def _cached(self, payment_id: str) -> QrImage | None:
        with self._lock:
            image = self._by_id.get(payment_id)
            if image is not None:
                self._by_id.move_to_end(payment_id)
            return image

    def _load(self, payment_id: str = "", reference: str = "") -> QrImage:
        with self._uow_factory() as uow:
            payment = (uow.payments.get(payment_id) if payment_id
                       else uow.payments.get_by_reference(reference.strip().upper()))
        if payment is None:
            raise NotFound(f"no payment {payment_id or reference!r}", reason="PAYMENT_NOT_FOUND")
        image = QrImage(payment.id, payment.agency_code, payment.reference, payment.qr_payload,
                        self._render_png(payment.qr_payload))
        with self._lock:
            self._by_id[payment.id] = image
            self._id_by_reference[payment.reference] = payment.id
            while len(self._by_id) > self._capacity:
                _, evicted = self._by_id.popitem(last=False)
                self._id_by_reference.pop(evicted.reference, None)
        return image

    def by_payment_id(self, payment_id: str) -> QrImage:
        return self._cached(payment_id) or self._load(payment_id=payment_id)

    def by_reference(self, reference: str) -> QrImage:
        """For the public payer page: the reference is printed on the payment notice."""
        with self._lock:
            payment_id = self._id_by_reference.get(reference.strip().upper())
        cached = self._cached(payment_id) if payment_id else None
        return cached or self._load(reference=reference)

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
