"""Flask routes `/callbacks/<code>` for connector callbacks: the connector verifies first, the core applies, and
the counterpart gets its own reply format; nothing unverified ever reaches the core."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from flask import Blueprint, Response, request

from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackReply,
    CallbackRequest,
    Connector,
    ConnectorError,
    ConnectorErrorKind,
    InboundNotification,
)

log = logging.getLogger("dvc.payments.callbacks")
MAX_CALLBACK_BYTES = 256 * 1024

HandleNotification = Callable[[str, InboundNotification], CallbackOutcome]
# For pull-only connectors: ask the core to query a payment's status now (the payer came back but the inline pull
# failed). Receives (connector code, payment reference as seen in the return URL).
PullStatus = Callable[[str, str], Any]


class Connectors(Protocol):
    def get(self, code: str) -> Connector | None: ...


def _response(reply: CallbackReply) -> Response:
    return Response(reply.body, status=reply.status_code, content_type=reply.content_type)


def callbacks_blueprint(registry: Connectors, handle_notification: HandleNotification,
                        pull_status: PullStatus | None = None) -> Blueprint:
    """One route per configured connector at ``/callbacks/<code>`` (GET for VNPay IPNs and payer returns, POST
    for everyone else)."""
    blueprint = Blueprint("callbacks", __name__)

    @blueprint.route("/callbacks/<code>", methods=["GET", "POST"])
    def callback(code: str) -> Response:
        connector = registry.get(code)
        if connector is None:
            return Response(b'{"error": "unknown connector"}', status=404, content_type="application/json")
        if (request.content_length or 0) > MAX_CALLBACK_BYTES:
            return _response(connector.reply(CallbackOutcome.REJECTED))
        inbound = CallbackRequest(
            method=request.method,
            query={name: value for name, value in request.args.items()},
            headers={name.lower(): value for name, value in request.headers.items()},
            body=request.get_data(cache=False)[:MAX_CALLBACK_BYTES + 1],
        )
        try:
            notification = connector.parse_callback(inbound)
        except ConnectorError as error:
            return _response(connector.reply(_refusal(code, connector, error, inbound, pull_status)))
        except Exception:
            # A connector bug must not let an unverified message through, nor leak a stack trace to the sender.
            log.exception("callback parsing crashed", extra={"connector": code})
            return _response(connector.reply(CallbackOutcome.ERROR))
        try:
            outcome = handle_notification(code, notification)
        except Exception:
            log.exception("callback handling failed", extra={"connector": code, "reference": notification.reference})
            outcome = CallbackOutcome.ERROR
        log.info("callback", extra={"connector": code, "reference": notification.reference,
                                    "status": notification.status.value, "outcome": outcome.value,
                                    "notification_id": connector.scrub(notification.notification_id)})
        return _response(connector.reply(outcome))

    return blueprint


def _refusal(code: str, connector: Connector, error: ConnectorError, inbound: CallbackRequest,
             pull_status: PullStatus | None) -> CallbackOutcome:
    detail = connector.scrub(str(error))
    if error.kind is ConnectorErrorKind.BAD_SIGNATURE:
        log.warning("callback refused: signature", extra={"connector": code, "detail": detail})
        return CallbackOutcome.BAD_SIGNATURE
    if error.kind in (ConnectorErrorKind.TIMEOUT, ConnectorErrorKind.UNAVAILABLE):
        # Only pull-only connectors call out while parsing; the payment is looked at again by the core.
        log.warning("callback pull failed", extra={"connector": code, "detail": detail})
        reference = inbound.query.get("order_code", "").strip()
        if pull_status is not None and reference and not connector.info.push_notifications:
            try:
                pull_status(code, reference)
            except Exception:
                log.exception("status pull after a failed return crashed", extra={"connector": code})
        return CallbackOutcome.ERROR
    log.warning("callback refused: malformed", extra={"connector": code, "detail": detail})
    return CallbackOutcome.REJECTED
