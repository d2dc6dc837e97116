"""VNPay sandbox: the signed payment URL, GET IPNs answered with RspCode, querydr, refund and the settlement file."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, redirect, request

from payment_service.adapters.connectors import vnpay
from payment_service.adapters.connectors.base import hmac_hex, render_settlement_csv, signatures_match, vn_timestamp
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
    page,
    parse_day,
)

# What an IPN says for each attempt outcome: (vnp_ResponseCode, vnp_TransactionStatus).
_IPN_CODES = {Status.SUCCEEDED: ("00", "00"), Status.FAILED: ("51", "02"), Status.CANCELLED: ("24", "02")}
_QUERY_STATUS = {Status.SUCCEEDED: "00", Status.PENDING: "01", Status.FAILED: "02", Status.CANCELLED: "02"}
# VNPay stops retrying on any answer it understands; only "99" or no answer makes it call again.
_FINAL_ANSWERS = frozenset({"00", "01", "02", "04", "97"})


def _acknowledged(status: int, body: bytes) -> bool:
    try:
        return json.loads(body).get("RspCode") in _FINAL_ANSWERS
    except (ValueError, AttributeError):
        return False


class VnpayProtocol:
    """VNPay's side of the conversation, for one terminal."""

    name = "vnpay"

    def __init__(self, tmn_code: str = catalog.VNPAY["tmn_code"],
                 hash_secret: str = catalog.VNPAY["hash_secret"]) -> None:
        self.tmn_code = tmn_code
        self.hash_secret = hash_secret

    def _result_fields(self, payment: SandboxPayment, attempt: Attempt) -> dict[str, str]:
        response_code, transaction_status = _IPN_CODES[attempt.status]
        return {
            "vnp_Amount": str(attempt.amount * vnpay.AMOUNT_UNIT), "vnp_BankCode": "NCB",
            "vnp_BankTranNo": f"VNP{attempt.provider_reference}", "vnp_CardType": "ATM",
            "vnp_OrderInfo": str(payment.data.get("order_info", "")), "vnp_PayDate": vn_timestamp(attempt.at),
            "vnp_ResponseCode": response_code, "vnp_TmnCode": self.tmn_code,
            "vnp_TransactionNo": attempt.provider_reference, "vnp_TransactionStatus": transaction_status,
            "vnp_TxnRef": payment.reference,
        }

    def _signed_query(self, fields: dict[str, str], forged: bool = False) -> str:
        key = self.hash_secret if not forged else self.hash_secret[::-1]
        return f"{urlencode(sorted(fields.items()))}&vnp_SecureHash={vnpay.query_signature(fields, key)}"

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery:
        url = f"{payment.data.get('notify_url') or sandbox.notify_url}?" \
              f"{self._signed_query(self._result_fields(payment, attempt), forged)}"
        return Delivery(f"IPN {attempt.status.value}{' forged' if forged else ''}",
                        lambda: ("GET", url, {}, None), _acknowledged)

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        back, final = str(payment.data.get("return_url", "")), payment.final
        if not back or final is None:
            return back
        return f"{back}{'&' if '?' in back else '?'}{self._signed_query(self._result_fields(payment, final))}"

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        @app.get(vnpay.PAY_PATH)
        def pay_url() -> Any:
            params = request.args.to_dict()
            if not signatures_match(vnpay.query_signature(params, self.hash_secret), params.get("vnp_SecureHash")):
                return page("VNPay sandbox", "<p>Sai chữ ký / invalid signature (code 97)</p>", 400)
            if params.get("vnp_TmnCode") != self.tmn_code:
                return page("VNPay sandbox", "<p>Website chưa được phê duyệt / unknown terminal (code 02)</p>", 400)
            try:
                amount = int(params["vnp_Amount"]) // vnpay.AMOUNT_UNIT
                reference = params["vnp_TxnRef"]
            except (KeyError, ValueError):
                return page("VNPay sandbox", "<p>Dữ liệu gửi sang không đúng định dạng (code 03)</p>", 400)
            payment, _ = sandbox.register(reference, amount, return_url=params.get("vnp_ReturnUrl", ""),
                                          order_info=params.get("vnp_OrderInfo", ""),
                                          create_date=params.get("vnp_CreateDate", ""))
            if payment.amount != amount:
                return page("VNPay sandbox", "<p>Giao dịch đã tồn tại với số tiền khác</p>", 409)
            target = f"/sandbox/pay/{reference}"
            if "application/json" in request.headers.get("Accept", ""):
                return json_response({"reference": reference, "pay_page": target})
            return redirect(target, code=302)

        @app.post(vnpay.API_PATH)
        def api() -> Response:
            body = request.get_json(silent=True)
            if not isinstance(body, dict):
                return json_response({"vnp_ResponseCode": "03", "vnp_Message": "Invalid format"}, 400)
            command = body.get("vnp_Command")
            fields = vnpay.QUERY_REQUEST_FIELDS if command == "querydr" else vnpay.REFUND_REQUEST_FIELDS
            payment = sandbox.book.get(str(body.get("vnp_TxnRef", "")))
            fault = sandbox.api_fault(payment, per_payment=True)
            if fault is not None:
                return fault
            answer: dict[str, Any] = {"vnp_ResponseId": sandbox.provider_reference("R"), "vnp_Command": command,
                                      "vnp_TmnCode": self.tmn_code, "vnp_TxnRef": body.get("vnp_TxnRef", "")}
            if command not in ("querydr", "refund"):
                answer.update(vnp_ResponseCode="99", vnp_Message="Unknown command")
            elif not signatures_match(vnpay.pipe_signature(body, fields, self.hash_secret), body.get("vnp_SecureHash")):
                answer.update(vnp_ResponseCode="97", vnp_Message="Invalid checksum")
            elif body.get("vnp_TmnCode") != self.tmn_code:
                answer.update(vnp_ResponseCode="02", vnp_Message="Merchant is not valid")
            elif payment is None:
                answer.update(vnp_ResponseCode="91", vnp_Message="Transaction not found")
            elif command == "querydr":
                answer.update(self._query_answer(payment))
            else:
                answer.update(self._refund_answer(sandbox, payment, body))
            response_fields = vnpay.QUERY_RESPONSE_FIELDS if command == "querydr" else vnpay.REFUND_RESPONSE_FIELDS
            answer["vnp_SecureHash"] = vnpay.pipe_signature(answer, response_fields, self.hash_secret)
            return json_response(answer)

        @app.get(vnpay.SETTLEMENT_PATH)
        def settlement() -> Response:
            params = request.args.to_dict()
            if not signatures_match(vnpay.query_signature(params, self.hash_secret), params.get("vnp_SecureHash")):
                return json_response({"error": "invalid checksum"}, 403)
            day = parse_day(params.get("vnp_Date", ""), "%Y%m%d")
            if day is None:
                return json_response({"error": "vnp_Date is yyyyMMdd"}, 400)
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            content = render_settlement_csv(sandbox.settlement_lines(day), vnpay.SETTLEMENT_LAYOUT)
            return Response(content, content_type="text/csv",
                            headers={"X-VNPAY-SecureHash": hmac_hex("sha512", self.hash_secret, content)})

    def _query_answer(self, payment: SandboxPayment) -> dict[str, Any]:
        final = payment.final
        return {
            "vnp_ResponseCode": "00", "vnp_Message": "QueryDR Success",
            "vnp_Amount": str((final.amount if final else payment.amount) * vnpay.AMOUNT_UNIT),
            "vnp_BankCode": "NCB", "vnp_PayDate": vn_timestamp(final.at) if final else "",
            "vnp_TransactionNo": final.provider_reference if final else "0", "vnp_TransactionType": "01",
            "vnp_TransactionStatus": _QUERY_STATUS[payment.status],
            "vnp_OrderInfo": payment.data.get("order_info", ""), "vnp_PromotionCode": "", "vnp_PromotionAmount": "",
        }

    @staticmethod
    def _refund_answer(sandbox: Sandbox, payment: SandboxPayment, body: dict[str, Any]) -> dict[str, Any]:
        try:
            amount = int(body.get("vnp_Amount", "")) // vnpay.AMOUNT_UNIT
        except ValueError:
            return {"vnp_ResponseCode": "03", "vnp_Message": "Invalid amount"}
        if payment.earlier_refund(body.get("vnp_RequestId")) is not None:
            # VNPay refuses a request id it has already seen (94) rather than answering it again.
            return {"vnp_ResponseCode": "94", "vnp_Message": "Duplicate request"}
        refunded = sum(int(item["amount"]) for item in payment.refunds)
        if payment.status is not Status.SUCCEEDED or amount <= 0 or refunded + amount > payment.paid_amount:
            return {"vnp_ResponseCode": "95", "vnp_Message": "Transaction cannot be refunded"}
        refund_no = sandbox.provider_reference("9")
        payment.refunds.append({"amount": amount, "refund_no": refund_no, "refund_id": body.get("vnp_RequestId")})
        return {"vnp_ResponseCode": "00", "vnp_Message": "Refund success", "vnp_Amount": str(body["vnp_Amount"]),
                "vnp_TransactionNo": refund_no, "vnp_TransactionType": body.get("vnp_TransactionType", "03"),
                "vnp_TransactionStatus": "05", "vnp_BankCode": "NCB", "vnp_PayDate": vn_timestamp(payment.created_at),
                "vnp_OrderInfo": body.get("vnp_OrderInfo", "")}


def create_app(*, notify_url: str = f"{catalog.DEFAULT_NOTIFY_URL_BASE}/vnpay", settings: SandboxSettings | None = None,
               public_url: str = "", tmn_code: str = catalog.VNPAY["tmn_code"],
               hash_secret: str = catalog.VNPAY["hash_secret"]) -> Flask:
    return create_sandbox_app(VnpayProtocol(tmn_code, hash_secret), notify_url=notify_url, settings=settings,
                              public_url=public_url)
