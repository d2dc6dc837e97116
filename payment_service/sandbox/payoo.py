"""Payoo sandbox: order XML with CheckSum, the JSON business API (order info, refund, settlement) and NotifyData
XML notifications signed over their KeyFields."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape

from flask import Flask, Response, request

from payment_service.adapters.connectors import payoo
from payment_service.adapters.connectors.base import parse_xml, render_settlement_csv, signatures_match, vn_timestamp
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

KEY_FIELDS = ("PaymentMethod", "State", "Session", "BusinessUsername", "ShopID", "ShopTitle", "ShopDomain",
              "ShopBackUrl", "OrderNo", "OrderCashAmount", "StartShippingDate", "ShippingDays", "OrderDescription",
              "NotifyUrl", "PaymentExpireDate")
_STATES = {Status.SUCCEEDED: "PAYMENT_RECEIVED", Status.FAILED: "PAYMENT_FAILED",
           Status.CANCELLED: "PAYMENT_CANCELLED"}
_ORDER_STATUS = {Status.SUCCEEDED: 1, Status.PENDING: 0, Status.FAILED: -1, Status.CANCELLED: -2}
NOT_REFUNDABLE = 7
BAD_REQUEST = 1


class PayooProtocol:
    """Payoo's side of the conversation, for one shop."""

    name = "payoo"

    def __init__(self, credentials: dict[str, str] | None = None) -> None:
        self.credentials = {**catalog.PAYOO, **(credentials or {})}
        self.key = self.credentials["checksum_key"]

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery:
        values = {
            "PaymentMethod": "E_WALLET", "State": _STATES[attempt.status], "Session": payment.reference,
            "BusinessUsername": self.credentials["business_username"], "ShopID": self.credentials["shop_id"],
            "ShopTitle": str(payment.data.get("shop_title", "")),
            "ShopDomain": str(payment.data.get("shop_domain", "")),
            "ShopBackUrl": str(payment.data.get("return_url", "")), "OrderNo": payment.reference,
            "OrderCashAmount": str(attempt.amount), "StartShippingDate": attempt.at.strftime("%d/%m/%Y"),
            "ShippingDays": "0", "OrderDescription": str(payment.data.get("description", "")),
            "NotifyUrl": str(payment.data.get("notify_url", "")),
            "PaymentExpireDate": str(payment.data.get("validity_time", "")),
        }
        data = "<PaymentNotification>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in values.items()) + \
               f"<PurchaseNo>{attempt.provider_reference}</PurchaseNo>" \
               f"<PaymentDate>{vn_timestamp(attempt.at)}</PaymentDate></PaymentNotification>"
        signature = payoo.key_fields_signature(self.key if not forged else self.key[::-1],
                                               [values[name] for name in KEY_FIELDS])
        package = (f"<PayooConnectionPackage><Data>{base64.b64encode(data.encode()).decode()}</Data>"
                   f"<Signature>{signature}</Signature><KeyFields>{'|'.join(KEY_FIELDS)}</KeyFields>"
                   f"</PayooConnectionPackage>")
        body = urlencode({"NotifyData": package}).encode()
        url = str(payment.data.get("notify_url") or sandbox.notify_url)
        return Delivery(f"NotifyData {attempt.status.value}{' forged' if forged else ''}",
                        lambda: ("POST", url, {"Content-Type": "application/x-www-form-urlencoded"}, body))

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        return str(payment.data.get("return_url", ""))

    def _envelope(self, data: dict[str, Any]) -> Response:
        text = json.dumps(data, ensure_ascii=False)
        return json_response({"ResponseData": text, "SecureHash": payoo.checksum(self.key, text)})

    def _request_data(self) -> dict[str, Any] | None:
        """The verified RequestData of a business API call, or None when credentials or checksum are wrong."""
        headers = request.headers
        if (headers.get("APIUsername"), headers.get("APIPassword"), headers.get("APISignature")) != (
                self.credentials["api_username"], self.credentials["api_password"], self.credentials["api_signature"]):
            return None
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("RequestData"), str):
            return None
        if not signatures_match(payoo.checksum(self.key, body["RequestData"]), body.get("SecureHash")):
            return None
        try:
            data = json.loads(body["RequestData"])
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        @app.post(payoo.CREATE_PATH)
        def create() -> Response:
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            xml = request.form.get("data", "")
            if not signatures_match(payoo.checksum(self.key, xml), request.form.get("checksum")):
                return json_response({"result": "error", "errorcode": "CHECKSUM_INVALID", "message": "bad checksum"})
            shop = parse_xml(xml)
            if shop is None or shop.findtext(".//shop_id") != self.credentials["shop_id"]:
                return json_response({"result": "error", "errorcode": "INVALID_ORDER", "message": "bad order"})
            try:
                amount = int(shop.findtext(".//order_cash_amount") or "")
            except ValueError:
                return json_response({"result": "error", "errorcode": "INVALID_AMOUNT", "message": "bad amount"})
            reference = shop.findtext(".//order_no") or ""
            fields = {name: shop.findtext(f".//{element}") or "" for name, element in (
                ("notify_url", "notify_url"), ("return_url", "shop_back_url"), ("shop_title", "shop_title"),
                ("shop_domain", "shop_domain"), ("validity_time", "validity_time"),
                ("description", "order_description"))}
            payment, _ = sandbox.register(reference, amount, **fields)
            if payment.amount != amount:
                return json_response({"result": "error", "errorcode": "DUPLICATE_ORDER", "message": "order exists"})
            return json_response({"result": "success", "order": {
                "order_no": reference, "payment_url": f"{sandbox.base_url()}/sandbox/pay/{reference}"}})

        @app.post(payoo.QUERY_PATH)
        def order_info() -> Response:
            data = self._request_data()
            if data is None:
                return json_response({"error": "unauthorised"}, 403)
            payment = sandbox.book.get(str(data.get("OrderId", "")))
            fault = sandbox.api_fault(payment, per_payment=True)
            if fault is not None:
                return fault
            if payment is None:
                return self._envelope({"ResponseCode": payoo.ORDER_NOT_FOUND, "Message": "order not found"})
            final = payment.final
            return self._envelope({
                "ResponseCode": payoo.OK, "OrderNo": payment.reference, "OrderStatus": _ORDER_STATUS[payment.status],
                "OrderCash": final.amount if final else payment.amount,
                "PurchaseNo": final.provider_reference if final else "",
                "PaymentDate": vn_timestamp(final.at) if final and final.status is Status.SUCCEEDED else ""})

        @app.post(payoo.REFUND_PATH)
        def refund() -> Response:
            data = self._request_data()
            if data is None:
                return json_response({"error": "unauthorised"}, 403)
            payment = sandbox.book.get(str(data.get("OrderId", "")))
            fault = sandbox.api_fault(payment, per_payment=True)
            if fault is not None:
                return fault
            amount = int(data.get("Money", 0) or 0)
            earlier = payment.earlier_refund(data.get("RefundId")) if payment else None
            if earlier is not None:
                return self._envelope({"ResponseCode": payoo.OK, "RefundNo": earlier["refund_no"]})
            refunded = sum(int(item["amount"]) for item in payment.refunds) if payment else 0
            if payment is None or payment.status is not Status.SUCCEEDED or amount <= 0 \
                    or refunded + amount > payment.paid_amount:
                return self._envelope({"ResponseCode": NOT_REFUNDABLE, "Message": "order cannot be refunded"})
            refund_no = sandbox.provider_reference("RF")
            payment.refunds.append({"amount": amount, "refund_no": refund_no, "refund_id": data.get("RefundId")})
            return self._envelope({"ResponseCode": payoo.OK, "RefundNo": refund_no})

        @app.post(payoo.SETTLEMENT_PATH)
        def settlement() -> Response:
            data = self._request_data()
            if data is None:
                return json_response({"error": "unauthorised"}, 403)
            day = parse_day(str(data.get("Date", "")), "%d/%m/%Y")
            if day is None:
                return self._envelope({"ResponseCode": BAD_REQUEST, "Message": "Date is dd/MM/yyyy"})
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            content = render_settlement_csv(sandbox.settlement_lines(day), payoo.SETTLEMENT_LAYOUT)
            return self._envelope({"ResponseCode": payoo.OK, "File": content.decode()})


def create_app(*, notify_url: str = f"{catalog.DEFAULT_NOTIFY_URL_BASE}/payoo", settings: SandboxSettings | None = None,
               public_url: str = "", credentials: dict[str, str] | None = None) -> Flask:
    return create_sandbox_app(PayooProtocol(credentials), notify_url=notify_url, settings=settings,
                              public_url=public_url)
