"""The payment HTTP edge: cached QR images, health probes, connector callbacks (the payer's pages, with the
channel start, are payment_service.entrypoints.pages)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify

from payment_service.service_layer.qr_images import PNG, QrImages
from payment_service.service_layer.services import PaymentServices
from servicekit.errors import DomainError, FailedPrecondition, NotFound, Unavailable

log = logging.getLogger("dvc.payments.http")

_STATUS_BY_ERROR = {NotFound: 404, FailedPrecondition: 409, Unavailable: 503}


def _error(error: DomainError) -> tuple[Response, int]:
    status = next((code for kind, code in _STATUS_BY_ERROR.items() if isinstance(error, kind)), 400)
    return jsonify({"error": error.reason, "message": error.message}), status


def create_app(services: PaymentServices, qr_images: QrImages, *, callbacks: Any = None) -> Flask:
    """The Flask app; ``callbacks`` is the connectors' blueprint (routes /callbacks/<code>) when available.
    servicekit adds /healthz and /readyz."""
    app = Flask("payment_service")

    @app.get("/pay/<reference>/qr.png")
    def qr_png(reference: str) -> Any:
        try:
            image = qr_images.by_reference(reference)
        except DomainError as error:
            return _error(error)
        response = Response(image.png, mimetype=PNG)
        # Revalidated on every use: after a short transfer the same address shows only what is still owed (the
        # payer's page links ?due=<amount>, which changes the address itself).
        response.headers["Cache-Control"] = "no-cache"
        return response

    if callbacks is not None:
        app.register_blueprint(callbacks)  # its routes are /callbacks/<connector code>
    return app


def callbacks_blueprint_or_none(registry: Any, handle_notification: Callable[..., Any],
                                pull_status: Callable[[str, str], Any]) -> Any:
    """The connectors' callback blueprint (payment_service.entrypoints.callbacks)."""
    try:
        from payment_service.entrypoints.callbacks import callbacks_blueprint
    except ImportError:
        log.warning("the connector callback blueprint is missing; /callbacks is not mounted")
        return None
    return callbacks_blueprint(registry, handle_notification, pull_status)
