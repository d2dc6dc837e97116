"""The payer's pages on the payment edge: /pay/<reference> (fees, VietQR and transfer details, channels, a status
that updates by itself, the e-receipt once paid), its JSON status, the return route of the gateways, and the
integrators' reference under /docs/."""

from __future__ import annotations

import logging
from pathlib import Path

from flask import Blueprint, Flask, jsonify, redirect, request
from flask.typing import ResponseReturnValue

from payment_service.domain import reference as references
from payment_service.entrypoints.pages.messages import VI
from payment_service.entrypoints.pages.reader import PayerPages
from payment_service.service_layer.services import PaymentServices
from servicekit.errors import DomainError, FailedPrecondition, NotFound
from servicekit.web import site
from servicekit.web.reference.serve import reference_blueprint

log = logging.getLogger("dvc.payments.pages")

STATUS_LABELS = {"created": "Waiting for payment", "pending": "Payment in progress", "succeeded": "Paid",
                 "failed": "Payment failed", "expired": "Expired: not paid in time",
                 "cancelled": "Cancelled by the agency", "refunded": "Refunded",
                 "partially_refunded": "Paid, partly refunded"}
STATUS_TONES = {"created": "", "pending": "warn", "succeeded": "ok", "failed": "bad", "expired": "bad",
                "cancelled": "bad", "refunded": "warn", "partially_refunded": "warn"}
CHANNEL_LABELS = {"bank": "Pay with Internet Banking", "wallet": "Pay with an e-wallet",
                  "gateway": "Pay by card or a payment gateway"}
FEE_KIND_LABELS = {"phi": "Fee (phí)", "le_phi": "Charge (lệ phí)", "other": "Other"}


def _not_found() -> ResponseReturnValue:
    return site.error_page(404, site.translate("Payment not found"),
                           site.translate("Check the payment code on your payment notice."))


def payer_blueprint(pages: PayerPages) -> Blueprint:
    blueprint = site.page_blueprint("payer_pages", __name__, template_folder="templates")

    @blueprint.get("/pay/<reference>")
    def payment(reference: str) -> ResponseReturnValue:
        channel = request.args.get("channel", "")
        if channel:
            return start(reference, channel)
        try:
            page = pages.page(reference)
        except NotFound:
            return _not_found()
        return site.render_page("pay/payment.html", page=page, status_labels=STATUS_LABELS,
                                status_tones=STATUS_TONES, channel_labels=CHANNEL_LABELS,
                                fee_kind_labels=FEE_KIND_LABELS)

    def start(reference: str, channel: str) -> ResponseReturnValue:
        try:
            return redirect(pages.start_channel(reference, channel), code=302)
        except NotFound:
            return _not_found()
        except FailedPrecondition:
            return redirect(f"/pay/{reference}", code=303)  # already closed: the page says how it ended
        except DomainError as error:
            log.warning("channel could not start", extra={"channel": channel, "reason": error.reason})
            return site.error_page(503, site.translate("This way of paying is not available right now"),
                                   site.translate("Go back and choose another way of paying, or pay by bank "
                                                  "transfer with the QR code."))

    @blueprint.get("/pay/<reference>/status.json")
    def status(reference: str) -> ResponseReturnValue:
        try:
            current = pages.status(reference)
        except NotFound:
            return jsonify({"error": "PAYMENT_NOT_FOUND"}), 404
        response = jsonify({"status": current, "final": current not in ("created", "pending")})
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.get("/pay/return")
    def gateway_return() -> ResponseReturnValue:
        """Gateways send the payer back here with their own parameters; the first valid payment reference
        among them says which page to show."""
        for values in request.args.listvalues():
            for value in values:
                candidate, _ = references.find_in_note(value)
                if candidate:
                    return redirect(f"/pay/{candidate}", code=303)
        return _not_found()

    return blueprint


def mount_payment_pages(app: Flask, services: PaymentServices, *, cookie_secure: str = "auto",
                        reference_dir: Path | None = None) -> None:
    """Put the payer's pages and the integrators' reference on the payment edge. The pages keep no session:
    they have no forms, only the payment's public view by reference."""
    site.init_web(app, translations=[VI], cookie_secure=cookie_secure)
    app.register_blueprint(payer_blueprint(PayerPages(services)))
    app.register_blueprint(reference_blueprint(reference_dir))
