"""MoMo sandbox (API v2): create, query, refund and settlement endpoints, and signed JSON IPNs."""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Flask, Response, request

from payment_service.adapters.connectors import momo
from payment_service.adapters.connectors.base import hmac_hex, render_settlement_csv, signatures_match
from payment_service.domain.connector import ConnectorStatus as Status
from payment_service.sandbox import catalog
from payment_service.sandbox.common import (
    Attempt,
    Delivery,
    Sandbox,
    SandboxPayment,
    SandboxSettings,
    create_sandbox_app,
    json_response,
    parse_day,
)

_RESULT_CODES = {Status.SUCCEEDED: 0, Status.FAILED: 1001, Status.CANCELLED: 1006, Status.PENDING: 1000}
BAD_SIGNATURE = 11
DUPLICATE_ORDER = 41
NOT_REFUNDABLE = 1080


class MomoProtocol:
    """MoMo's side of the conversation, for one partner code."""

    name = "momo"

    def __init__(self, partner_code: str = catalog.MOMO["partner_code"],
                 access_key: str = catalog.MOMO["access_key"], secret_key: str = catalog.MOMO["secret_key"]) -> None:
        self.partner_code = partner_code
        self.access_key = access_key
        self.secret_key = secret_key

    def _sign(self, fields: dict[str, Any], names: tuple[str, ...], forged: bool = False) -> dict[str, Any]:
        key = self.secret_key if not forged else self.secret_key[::-1]
        fields["signature"] = momo.raw_signature({**fields, "accessKey": self.access_key}, names, key)
        return fields

    def _verified(self, body: Any, names: tuple[str, ...]) -> bool:
        return isinstance(body, dict) and signatures_match(
            momo.raw_signature({**body, "accessKey": self.access_key}, names, self.secret_key), body.get("signature"))

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery:
        code = _RESULT_CODES[attempt.status]
        fields = self._sign({
            "partnerCode": self.partner_code, "orderId": payment.reference,
            "requestId": str(payment.data.get("request_id", "")), "amount": attempt.amount,
            "orderInfo": str(payment.data.get("order_info", "")), "orderType": "momo_wallet",
            "transId": int(attempt.provider_reference), "resultCode": code,
            "message": "Thành công." if code == 0 else "Giao dịch thất bại.", "payType": "qr",
            "responseTime": int(attempt.at.timestamp() * 1000), "extraData": "",
        }, momo.IPN_FIELDS, forged)
        body = json.dumps(fields, ensure_ascii=False).encode()
        url = str(payment.data.get("notify_url") or sandbox.notify_url)
        return Delivery(f"IPN {attempt.status.value}{' forged' if forged else ''}",
                        lambda: ("POST", url, {"Content-Type": "application/json"}, body))

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        return str(payment.data.get("redirect_url", ""))

    def _answer(self, body: dict[str, Any], code: int, message: str, names: tuple[str, ...] | None,
                **extra: Any) -> Response:
        answer = {"partnerCode": self.partner_code, "orderId": body.get("orderId", ""),
                  "requestId": body.get("requestId", ""), "resultCode": code, "message": message,
                  "responseTime": int(time.time() * 1000), **extra}
        if names is not None:
            self._sign(answer, names)
        return json_response(answer)

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        @app.post(momo.CREATE_PATH)
        def create() -> Response:
            body = request.get_json(silent=True)
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            if not self._verified(body, momo.CREATE_FIELDS):
                return self._answer(body if isinstance(body, dict) else {}, BAD_SIGNATURE, "Chữ ký không hợp lệ",
                                    None)
            assert isinstance(body, dict)
            try:
                amount = int(body["amount"])
            except (KeyError, TypeError, ValueError):
                return self._answer(body, 20, "Số tiền không hợp lệ", None)
            payment, _ = sandbox.register(str(body["orderId"]), amount, notify_url=body.get("ipnUrl", ""),
                                          redirect_url=body.get("redirectUrl", ""), request_id=body.get("requestId"),
                                          order_info=body.get("orderInfo", ""))
            if payment.amount != amount:
                return self._answer(body, DUPLICATE_ORDER, "Trùng mã đơn hàng", None)
            pay_url = f"{sandbox.base_url()}/sandbox/pay/{payment.reference}"
            return self._answer(body, 0, "Thành công.", None, amount=amount, payUrl=pay_url, deeplink=pay_url,
                                qrCodeUrl=pay_url)

        @app.post(momo.QUERY_PATH)
        def query() -> Response:
            body = request.get_json(silent=True)
            payment = sandbox.book.get(str(body.get("orderId", ""))) if isinstance(body, dict) else None
            fault = sandbox.api_fault(payment, per_payment=True)
            if fault is not None:
                return fault
            if not isinstance(body, dict) or not self._verified(body, momo.QUERY_FIELDS):
                return self._answer(body if isinstance(body, dict) else {}, BAD_SIGNATURE, "Chữ ký không hợp lệ",
                                    momo.QUERY_ANSWER_FIELDS)
            if payment is None:
                return self._answer(body, momo.NOT_FOUND, "Không tìm thấy giao dịch", momo.QUERY_ANSWER_FIELDS)
            final = payment.final
            return self._answer(body, _RESULT_CODES[payment.status], payment.status.value, momo.QUERY_ANSWER_FIELDS,
                                amount=final.amount if final else payment.amount, extraData="", payType="qr",
                                transId=int(final.provider_reference) if final else 0)

        @app.post(momo.REFUND_PATH)
        def refund() -> Response:
            body = request.get_json(silent=True)
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            if not isinstance(body, dict) or not self._verified(body, momo.REFUND_FIELDS):
                return self._answer(body if isinstance(body, dict) else {}, BAD_SIGNATURE, "Chữ ký không hợp lệ",
                                    momo.REFUND_ANSWER_FIELDS)
            payment = next((p for p in sandbox.book.all() if p.final and
                            str(p.final.provider_reference) == str(body.get("transId"))), None)
            if payment is not None:
                per_payment = sandbox.api_fault(payment, per_payment=True)
                if per_payment is not None:
                    return per_payment
            amount = int(body.get("amount", 0) or 0)
            earlier = payment.earlier_refund(body.get("orderId")) if payment else None
            if earlier is not None:
                return self._answer(body, 0, "Thành công.", momo.REFUND_ANSWER_FIELDS, amount=earlier["amount"],
                                    transId=earlier["trans_id"])
            refunded = sum(int(item["amount"]) for item in payment.refunds) if payment else 0
            if payment is None or payment.status is not Status.SUCCEEDED or amount <= 0 \
                    or refunded + amount > payment.paid_amount:
                return self._answer(body, NOT_REFUNDABLE, "Giao dịch không thể hoàn tiền", momo.REFUND_ANSWER_FIELDS,
                                    amount=amount, transId=0)
            trans_id = int(sandbox.provider_reference())
            payment.refunds.append({"amount": amount, "trans_id": trans_id, "refund_id": body.get("orderId")})
            return self._answer(body, 0, "Thành công.", momo.REFUND_ANSWER_FIELDS, amount=amount, transId=trans_id)

        @app.get(momo.SETTLEMENT_PATH)
        def settlement() -> Response:
            params = request.args.to_dict()
            if not self._verified(params, momo.SETTLEMENT_FIELDS):
                return json_response({"resultCode": BAD_SIGNATURE, "message": "Chữ ký không hợp lệ"}, 403)
            day = parse_day(params.get("date", ""))
            if day is None:
                return json_response({"resultCode": 20, "message": "date is YYYY-MM-DD"}, 400)
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            content = render_settlement_csv(sandbox.settlement_lines(day), momo.SETTLEMENT_LAYOUT)
            return Response(content, content_type="text/csv",
                            headers={"X-MoMo-Signature": hmac_hex("sha256", self.secret_key, content)})


def create_app(*, notify_url: str = f"{catalog.DEFAULT_NOTIFY_URL_BASE}/momo", settings: SandboxSettings | None = None,
               public_url: str = "", partner_code: str = catalog.MOMO["partner_code"],
               access_key: str = catalog.MOMO["access_key"], secret_key: str = catalog.MOMO["secret_key"]) -> Flask:
    return create_sandbox_app(MomoProtocol(partner_code, access_key, secret_key), notify_url=notify_url,
                              settings=settings, public_url=public_url)
