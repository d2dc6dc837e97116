"""Ngân Lượng sandbox (checkout API 3.1): SetExpressCheckout, GetTransactionDetail and the settlement file; the only
"callback" is the payer's browser coming back to the return URL with a token."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from flask import Flask, Response, request

from payment_service.adapters.connectors import nganluong
from payment_service.adapters.connectors.base import render_settlement_csv
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

WRONG_MERCHANT = "29"
BAD_REQUEST = "99"
DUPLICATE_ORDER = "06"


def _xml(**fields: object) -> Response:
    inner = "".join(f"<{name}>{escape(str(value))}</{name}>" for name, value in fields.items())
    return Response(f"<?xml version=\"1.0\" encoding=\"utf-8\"?><result>{inner}</result>", content_type="text/xml")


class NganLuongProtocol:
    """Ngân Lượng's side of the conversation, for one merchant."""

    name = "nganluong"

    def __init__(self, merchant_id: str = catalog.NGANLUONG["merchant_id"],
                 merchant_password: str = catalog.NGANLUONG["merchant_password"]) -> None:
        self.merchant_id = merchant_id
        self.password_md5 = nganluong.merchant_password(merchant_password)
        self.references_by_token: dict[str, str] = {}

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery:
        # A browser return: the cancel URL for a payer who gave up, with a bogus token when "forged".
        back = payment.data.get("return_url") if attempt.status is Status.SUCCEEDED else payment.data.get("cancel_url")
        token = str(payment.data["token"]) if not forged else secrets.token_hex(16)
        url = f"{back or sandbox.notify_url}?{urlencode({'token': token, 'order_code': payment.reference})}"
        return Delivery(f"payer return {attempt.status.value}{' forged' if forged else ''}",
                        lambda: ("GET", url, {}, None), lambda status, body: True, max_attempts=1)

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        back = str(payment.data.get("return_url", ""))
        return f"{back}?{urlencode({'token': payment.data['token'], 'order_code': payment.reference})}" if back else ""

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        @app.post(nganluong.API_PATH)
        def api() -> Response:
            form = request.form
            if form.get("merchant_id") != self.merchant_id or form.get("merchant_password") != self.password_md5:
                return _xml(error_code=WRONG_MERCHANT, description="Sai merchant_id hoặc merchant_password")
            function = form.get("function")
            if function == "SetExpressCheckout":
                return self._checkout(sandbox)
            if function == "GetTransactionDetail":
                return self._detail(sandbox)
            if function == "GetSettlementFile":
                day = parse_day(form.get("date", ""))
                fault = sandbox.api_fault()
                if fault is not None:
                    return fault
                if day is None:
                    return _xml(error_code=BAD_REQUEST, description="date is YYYY-MM-DD")
                return Response(render_settlement_csv(sandbox.settlement_lines(day), nganluong.SETTLEMENT_LAYOUT),
                                content_type="text/csv")
            return _xml(error_code=BAD_REQUEST, description="unknown function")

    def _checkout(self, sandbox: Sandbox) -> Response:
        fault = sandbox.api_fault()
        if fault is not None:
            return fault
        form = request.form
        try:
            amount = int(form.get("total_amount", ""))
        except ValueError:
            return _xml(error_code=BAD_REQUEST, description="total_amount is not a number")
        reference = form.get("order_code", "")
        payment, _ = sandbox.register(reference, amount, token=f"{secrets.token_hex(8)}-{reference}",
                                      return_url=form.get("return_url", ""), cancel_url=form.get("cancel_url", ""))
        if payment.amount != amount:
            return _xml(error_code=DUPLICATE_ORDER, description="order_code exists with another amount")
        self.references_by_token[payment.data["token"]] = reference
        return _xml(error_code=nganluong.OK, token=payment.data["token"], description="",
                    time_limit=form.get("time_limit", ""),
                    checkout_url=f"{sandbox.base_url()}/sandbox/pay/{reference}")

    def _detail(self, sandbox: Sandbox) -> Response:
        token = request.form.get("token", "")
        payment = sandbox.book.get(self.references_by_token.get(token, ""))
        fault = sandbox.api_fault(payment, per_payment=True)
        if fault is not None:
            return fault
        if payment is None:
            return _xml(error_code=nganluong.TOKEN_NOT_FOUND, description="token không tồn tại")
        final = payment.final
        status = "00" if payment.status is Status.SUCCEEDED else "02"
        return _xml(error_code=nganluong.OK, token=token, description="", transaction_status=status,
                    receiver_email=catalog.NGANLUONG["receiver_email"], order_code=payment.reference,
                    total_amount=final.amount if final else payment.amount, payment_method="NL", bank_code="",
                    payment_type="1", transaction_id=final.provider_reference if final else "")


def create_app(*, notify_url: str = f"{catalog.DEFAULT_NOTIFY_URL_BASE}/nganluong",
               settings: SandboxSettings | None = None, public_url: str = "",
               merchant_id: str = catalog.NGANLUONG["merchant_id"],
               merchant_password: str = catalog.NGANLUONG["merchant_password"]) -> Flask:
    return create_sandbox_app(NganLuongProtocol(merchant_id, merchant_password), notify_url=notify_url,
                              settings=settings, public_url=public_url)
