"""A bank speaking the portal connection standard (DVC-PORTAL-1): verifies the platform's signed requests, answers
signed, notifies signed, and serves the signed settlement file. One module for every portal bank; the bank is
configuration (its code and keys)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flask import Flask, Response, request

from payment_service.adapters.connectors import portal_standard as portal
from payment_service.adapters.connectors.base import render_settlement_csv
from payment_service.domain.connector import ConnectorError
from payment_service.domain.connector import ConnectorStatus as Status
from payment_service.sandbox import catalog
from payment_service.sandbox.common import (
    Attempt,
    Delivery,
    Sandbox,
    SandboxPayment,
    SandboxSettings,
    create_sandbox_app,
    parse_day,
)

_STATUS_NAMES = {status: name for name, status in portal.STATUSES.items()}


def _acknowledged(status: int, body: bytes) -> bool:
    # The standard: 2xx and 4xx end the retries (4xx alerts the bank's operators); 5xx or no answer retries.
    return 200 <= status < 500


class PortalBankSide:
    """The bank's keys and signing: verifies the platform, signs answers, notifications and files."""

    def __init__(self, code: str, *, bank_key: Ed25519PrivateKey | None = None, bank_key_id: str = "",
                 platform_public_key: Ed25519PublicKey | None = None, platform_key_id: str = "",
                 merchant_id: str = catalog.MERCHANT_ID) -> None:
        self.code = code
        self.merchant_id = merchant_id
        self.signer = portal.PortalSigner(bank_key_id or catalog.portal_key_id(code, "bank"),
                                          bank_key or catalog.portal_key(code, "bank"))
        self.verifier = portal.PortalVerifier(
            platform_key_id or catalog.portal_key_id(code, "platform"),
            platform_public_key or catalog.portal_key(code, "platform").public_key(), portal.MemoryNonceStore())

    def answer(self, payload: Any, status: int = 200, *, content: bytes | None = None,
               content_type: str = "application/json") -> Response:
        """A response signed over its body and bound to the request's nonce."""
        body = content if content is not None else json.dumps(payload, ensure_ascii=False).encode()
        request_nonce = request.headers.get(portal.HEADER_NONCE, "")
        headers = self.signer.response_headers(status, request_nonce, body, now=datetime.now(UTC).timestamp())
        return Response(body, status=status, content_type=content_type, headers=headers)

    def error(self, status: int, code: str, message: str) -> Response:
        return self.answer({"error": {"code": code, "message": message}}, status)

    def verify(self) -> Response | None:
        """None when the request is signed by the platform within the window with a fresh nonce, else the
        signed error answer."""
        target = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
        try:
            self.verifier.verify_request(request.method, target, dict(request.headers), request.get_data(),
                                         now=datetime.now(UTC).timestamp())
        except ConnectorError as error:
            return self.error(401, error.provider_code or "BAD_SIGNATURE", str(error))
        return None

    def signed(self, view: Callable[..., Response]) -> Callable[..., Response]:
        """``view`` behind ``verify``: a request the platform did not sign gets the signed 401, not the view."""

        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Response:
            problem = self.verify()
            return problem if problem is not None else view(*args, **kwargs)

        return checked

    def notification(self, url: str, payload: dict[str, Any], *, forged: bool, label: str) -> Delivery:
        body = json.dumps(payload, ensure_ascii=False).encode()
        target = urlsplit(url).path

        def build() -> tuple[str, str, dict[str, str], bytes | None]:
            # Signed at each attempt: a retry carries a fresh timestamp and nonce, as the standard requires.
            signer = self.signer if not forged else portal.PortalSigner(self.signer.key_id,
                                                                         Ed25519PrivateKey.generate())
            headers = signer.request_headers("POST", target, body, now=datetime.now(UTC).timestamp())
            return "POST", url, {**headers, "Content-Type": "application/json"}, body

        return Delivery(label, build, _acknowledged)


class PortalBankProtocol:
    """Payments, status, refunds and settlement of one portal bank."""

    def __init__(self, side: PortalBankSide) -> None:
        self.side = side
        self.name = side.code

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery:
        status = _STATUS_NAMES[attempt.status]
        payload = {"notification_id": f"{self.name}-{attempt.provider_reference}-{status}", "type": "PAYMENT_RESULT",
                   "reference": payment.reference, "bank_transaction_id": attempt.provider_reference,
                   "status": status, "amount": attempt.amount, "occurred_at": attempt.at.isoformat()}
        url = str(payment.data.get("notify_url") or sandbox.notify_url)
        return self.side.notification(url, payload, forged=forged,
                                      label=f"PAYMENT_RESULT {status}{' forged' if forged else ''}")

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        return str(payment.data.get("return_url", ""))

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        side = self.side

        @app.post(portal.PAYMENTS_PATH)
        @side.signed
        def create() -> Response:
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not isinstance(body.get("amount"), int) or body["amount"] <= 0 \
                    or not body.get("reference") or body.get("currency") != "VND":
                return side.error(400, "INVALID_REQUEST", "reference, a positive integer amount and VND are required")
            if body.get("merchant_id") != side.merchant_id:
                return side.error(403, "UNKNOWN_MERCHANT", "merchant_id is not registered with this bank")
            payment, created = sandbox.register(str(body["reference"]), body["amount"],
                                                notify_url=body.get("notify_url", ""),
                                                return_url=body.get("return_url", ""),
                                                bank_transaction_id=sandbox.provider_reference())
            if payment.amount != body["amount"]:
                return side.error(409, "DUPLICATE_REFERENCE", "reference exists with another amount")
            return side.answer({"reference": payment.reference, "bank_transaction_id": payment.data[
                "bank_transaction_id"], "status": _STATUS_NAMES[payment.status],
                "payment_url": f"{sandbox.base_url()}/sandbox/pay/{payment.reference}"}, 201 if created else 200)

        @app.get(f"{portal.PAYMENTS_PATH}/<reference>")
        @side.signed
        def status(reference: str) -> Response:
            payment = sandbox.book.get(reference)
            fault = sandbox.api_fault(payment, per_payment=True)
            if fault is not None:
                return fault
            if payment is None:
                return side.error(404, "NOT_FOUND", "no payment with this reference")
            final = payment.final
            return side.answer({
                "reference": payment.reference, "status": _STATUS_NAMES[payment.status],
                "bank_transaction_id": final.provider_reference if final else payment.data["bank_transaction_id"],
                "amount": final.amount if final else payment.amount,
                "paid_at": final.at.isoformat() if final and final.status is Status.SUCCEEDED else None})

        @app.post(portal.REFUNDS_PATH)
        @side.signed
        def refund() -> Response:
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not isinstance(body.get("amount"), int) or not body.get("refund_id"):
                return side.error(400, "INVALID_REQUEST", "refund_id, reference and an integer amount are required")
            payment = sandbox.book.get(str(body.get("reference", "")))
            fault = sandbox.api_fault(payment, per_payment=True)
            if fault is not None:
                return fault
            if payment is None:
                return side.error(404, "NOT_FOUND", "no payment with this reference")
            earlier = payment.earlier_refund(body["refund_id"])
            if earlier is not None:
                return side.answer({"refund_id": body["refund_id"], "status": "ACCEPTED",
                                    "bank_refund_id": earlier["bank_refund_id"]})
            refunded = sum(int(item["amount"]) for item in payment.refunds)
            if payment.status is not Status.SUCCEEDED:
                return side.error(422, "NOT_REFUNDABLE", "only a succeeded payment can be refunded")
            if body["amount"] <= 0 or refunded + body["amount"] > payment.paid_amount:
                return side.error(422, "AMOUNT_EXCEEDS_PAYMENT", "more than what is left to refund")
            bank_refund_id = sandbox.provider_reference("RF")
            payment.refunds.append({"refund_id": body["refund_id"], "amount": body["amount"],
                                    "bank_refund_id": bank_refund_id})
            notice = side.notification(str(payment.data.get("notify_url") or sandbox.notify_url), {
                "notification_id": f"{self.name}-{bank_refund_id}-SUCCEEDED", "type": "REFUND_RESULT",
                "reference": payment.reference, "refund_id": body["refund_id"], "bank_refund_id": bank_refund_id,
                "status": "SUCCEEDED", "amount": body["amount"], "occurred_at": datetime.now(UTC).isoformat()},
                forged=False, label="REFUND_RESULT SUCCEEDED")
            sandbox.sender.schedule(notice, sandbox.settings.callback_delay_seconds, payment)
            return side.answer({"refund_id": body["refund_id"], "status": "ACCEPTED", "bank_refund_id": bank_refund_id})

        @app.get(f"{portal.SETTLEMENTS_PATH}/<day_text>")
        @side.signed
        def settlement(day_text: str) -> Response:
            day = parse_day(day_text)
            if day is None:
                return side.error(400, "INVALID_REQUEST", "the day is YYYY-MM-DD")
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            content = side.signer.sign_file(render_settlement_csv(sandbox.settlement_lines(day),
                                                                  portal.SETTLEMENT_LAYOUT))
            return side.answer(None, content=content, content_type="text/csv")


def create_app(code: str = "vietcombank", *, notify_url: str = "", settings: SandboxSettings | None = None,
               public_url: str = "", side: PortalBankSide | None = None) -> Flask:
    """A portal bank sandbox; ``code`` picks the bank's sandbox keys (see catalog.PORTAL_BANKS)."""
    side = side or PortalBankSide(code)
    return create_sandbox_app(PortalBankProtocol(side), notify_url=notify_url or
                              f"{catalog.DEFAULT_NOTIFY_URL_BASE}/{code}", settings=settings, public_url=public_url)
