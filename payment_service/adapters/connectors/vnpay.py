"""VNPay: HMAC-SHA512 signed payment URL (amount × 100), GET IPN answered with RspCode, querydr and refund."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import quote_plus, urlencode

import requests

from payment_service.adapters.connectors.base import (
    Clock,
    ConfigEntry,
    ConnectorBase,
    Scrubber,
    SettlementLayout,
    bad_signature,
    hmac_hex,
    parse_vn_timestamp,
    protocol_error,
    signatures_match,
    to_dong,
    utc_now,
    vn_timestamp,
)
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackReply,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorInfo,
    ConnectorResult,
    ConnectorStatus,
    InboundNotification,
    NotificationKind,
    PaymentOrder,
    RefundResult,
    SettlementLine,
)

VERSION = "2.1.0"
AMOUNT_UNIT = 100  # vnp_Amount is đồng × 100
PAY_PATH = "/paymentv2/vpcpay.html"
API_PATH = "/merchant_webapi/api/transaction"
SETTLEMENT_PATH = "/merchant_webapi/settlement"
HASH_FIELDS = ("vnp_SecureHash", "vnp_SecureHashType")

# querydr and refund sign a '|'-joined list of fields in these fixed orders (VNPay API 2.1.0).
QUERY_REQUEST_FIELDS = ("vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TxnRef",
                        "vnp_TransactionDate", "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo")
REFUND_REQUEST_FIELDS = ("vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TransactionType",
                         "vnp_TxnRef", "vnp_Amount", "vnp_TransactionNo", "vnp_TransactionDate", "vnp_CreateBy",
                         "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo")
REFUND_RESPONSE_FIELDS = ("vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode",
                          "vnp_TxnRef", "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo",
                          "vnp_TransactionType", "vnp_TransactionStatus", "vnp_OrderInfo")
QUERY_RESPONSE_FIELDS = (*REFUND_RESPONSE_FIELDS, "vnp_PromotionCode", "vnp_PromotionAmount")

# IPN vnp_ResponseCode: 00 paid, 24 the payer cancelled, 11 the payment window expired; anything else failed.
_CANCELLED_CODES = frozenset({"24", "11"})
# querydr vnp_TransactionStatus: 00 paid, 01 not finished, 07 held for fraud review; 05/06/09 are refund states
# of a paid transaction; the rest (02 error, 04 reversed...) mean not paid.
_PAID_STATUSES = frozenset({"00", "05", "06", "09"})
_PENDING_STATUSES = frozenset({"01", "07"})
DUPLICATE_REQUEST = "94"   # a vnp_RequestId VNPay has already received
QUERY_NOT_FOUND = "91"

REPLIES: Mapping[CallbackOutcome, tuple[str, str]] = {
    CallbackOutcome.ACCEPTED: ("00", "Confirm Success"),
    CallbackOutcome.DUPLICATE: ("02", "Order already confirmed"),
    CallbackOutcome.UNKNOWN_REFERENCE: ("01", "Order not found"),
    CallbackOutcome.AMOUNT_MISMATCH: ("04", "Invalid amount"),
    CallbackOutcome.BAD_SIGNATURE: ("97", "Invalid signature"),
    CallbackOutcome.REJECTED: ("99", "Unknown error"),
    CallbackOutcome.ERROR: ("99", "Unknown error"),
}

SETTLEMENT_LAYOUT = SettlementLayout(
    reference="vnp_TxnRef", provider_reference="vnp_TransactionNo", amount="vnp_Amount",
    status="vnp_TransactionStatus", settled_on="vnp_SettleDate",
    statuses={"00": ConnectorStatus.SUCCEEDED, "01": ConnectorStatus.PENDING, "02": ConnectorStatus.FAILED},
    amount_unit=AMOUNT_UNIT, date_format="%Y%m%d",
)


def signing_data(params: Mapping[str, str]) -> str:
    """The text VNPay signs: every vnp_* field except the hash fields, sorted by name, form-encoded."""
    fields = sorted((name, value) for name, value in params.items()
                    if name.startswith("vnp_") and name not in HASH_FIELDS)
    return "&".join(f"{quote_plus(name)}={quote_plus(str(value))}" for name, value in fields)


def query_signature(params: Mapping[str, str], secret: str) -> str:
    return hmac_hex("sha512", secret, signing_data(params))


def pipe_signature(params: Mapping[str, Any], names: tuple[str, ...], secret: str) -> str:
    """HMAC-SHA512 of the named fields joined by '|' (absent fields count as empty)."""
    return hmac_hex("sha512", secret, "|".join(str(params.get(name, "") or "") for name in names))


class VnpayConnector(ConnectorBase):
    """VNPay gateway (cards, bank apps, VNPay-QR) for one merchant terminal (TmnCode)."""

    creates_without_calling = True   # the payer is sent to a signed URL built here

    settlement_layout = SETTLEMENT_LAYOUT

    def __init__(self, code: str, config: ConfigEntry, *, clock: Clock = utc_now,
                 session: requests.Session | None = None) -> None:
        self.base_url = config.url("base_url")
        self.api_url = config.url("api_url", self.base_url)
        self.tmn_code = config.text("tmn_code")
        self.hash_secret = config.text("hash_secret")
        self.return_url = config.url("return_url", "")
        self.ip_address = config.text("ip_address", "127.0.0.1")
        info = ConnectorInfo(code=code, display_name=config.text("display_name", "VNPay"), channel="gateway")
        scrubber = Scrubber(secrets=[self.hash_secret], signature_fields=HASH_FIELDS,
                            account_fields=("vnp_CardNumber", "vnp_BankTranNo", "vnp_AccountNumber"))
        super().__init__(info, config, scrubber, clock=clock, session=session)

    def check_credentials(self) -> None:
        super().check_credentials()
        if len(self.hash_secret) < 16:
            raise ConnectorError(ConnectorErrorKind.CONFIGURATION, "hash_secret: shorter than 16 characters")

    # -- outbound ------------------------------------------------------------------------------------------------

    def create(self, order: PaymentOrder) -> ConnectorResult:
        """VNPay needs no server call to start: the payer is sent to a signed payment URL."""
        return_url = order.return_url or self.return_url
        if not return_url:
            raise ConnectorError(ConnectorErrorKind.REJECTED, "VNPay needs a return URL (order or return_url)")
        params = {
            "vnp_Version": VERSION, "vnp_Command": "pay", "vnp_TmnCode": self.tmn_code,
            "vnp_Amount": str(order.amount * AMOUNT_UNIT), "vnp_CurrCode": "VND", "vnp_TxnRef": order.reference,
            "vnp_OrderInfo": order.description or order.reference, "vnp_OrderType": "other", "vnp_Locale": "vn",
            "vnp_ReturnUrl": return_url, "vnp_IpAddr": self.ip_address,
            "vnp_CreateDate": vn_timestamp(self.clock()), "vnp_ExpireDate": vn_timestamp(order.expires_at),
        }
        signature = query_signature(params, self.hash_secret)
        url = f"{self.base_url}{PAY_PATH}?{urlencode(sorted(params.items()))}&vnp_SecureHash={signature}"
        return ConnectorResult(ConnectorStatus.PENDING, redirect_url=url)

    def _api(self, operation: str, params: dict[str, str], request_fields: tuple[str, ...],
             response_fields: tuple[str, ...]) -> dict[str, Any]:
        params["vnp_SecureHash"] = pipe_signature(params, request_fields, self.hash_secret)
        response = self.http.send("POST", f"{self.api_url}{API_PATH}", operation=operation,
                                  headers={"Content-Type": "application/json"}, body=json.dumps(params).encode())
        answer = response.json()
        if not isinstance(answer, dict):
            raise protocol_error(f"{operation}: answer is not a JSON object")
        if not signatures_match(pipe_signature(answer, response_fields, self.hash_secret),
                                answer.get("vnp_SecureHash")):
            raise bad_signature(f"{operation}: VNPay answer signature does not verify")
        if str(answer.get("vnp_TxnRef", "")) != params["vnp_TxnRef"]:
            raise protocol_error(f"{operation}: answer is about another transaction")
        return answer

    def _request_base(self, command: str, reference: str, order_info: str, request_id: str = "") -> dict[str, str]:
        return {"vnp_RequestId": request_id or uuid.uuid4().hex, "vnp_Version": VERSION, "vnp_Command": command,
                "vnp_TmnCode": self.tmn_code, "vnp_TxnRef": reference, "vnp_OrderInfo": order_info,
                "vnp_CreateDate": vn_timestamp(self.clock()), "vnp_IpAddr": self.ip_address}

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        params = self._request_base("querydr", reference, f"Query {reference}")
        params["vnp_TransactionDate"] = vn_timestamp(created_at)
        answer = self._api("querydr", params, QUERY_REQUEST_FIELDS, QUERY_RESPONSE_FIELDS)
        code = str(answer.get("vnp_ResponseCode", ""))
        if code == QUERY_NOT_FOUND:
            return ConnectorResult(ConnectorStatus.UNKNOWN, provider_code=code, message="VNPay has no such order")
        if code != "00":
            raise ConnectorError(ConnectorErrorKind.REJECTED, f"VNPay querydr refused: code {code}",
                                 provider_code=code)
        transaction_status = str(answer.get("vnp_TransactionStatus", ""))
        if transaction_status in _PAID_STATUSES:
            status = ConnectorStatus.SUCCEEDED
        elif transaction_status in _PENDING_STATUSES:
            status = ConnectorStatus.PENDING
        else:
            status = ConnectorStatus.FAILED
        return ConnectorResult(
            status, provider_reference=str(answer.get("vnp_TransactionNo", "")),
            amount=to_dong(answer.get("vnp_Amount", ""), unit=AMOUNT_UNIT, what="vnp_Amount"),
            provider_code=transaction_status, message=str(answer.get("vnp_Message", "")),
            paid_at=parse_vn_timestamp(str(answer.get("vnp_PayDate", ""))) if status is ConnectorStatus.SUCCEEDED
            else None)

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        """Refund through the merchant API; VNPay wants the original transaction date, which the caller passes
        when it has it (otherwise today is sent and VNPay may refuse)."""
        # The platform's refund id (the same on every retry of one refund) is VNPay's request id, which VNPay
        # says must not repeat: a retry after a lost answer is then recognised instead of refunding twice.
        params = self._request_base("refund", reference, f"Refund {refund_id}", request_id=refund_id[:32])
        params.update({
            # 03 (partial) is accepted for any amount up to what was paid, so the caller need not say which.
            "vnp_TransactionType": "03", "vnp_Amount": str(amount * AMOUNT_UNIT),
            "vnp_TransactionNo": provider_reference, "vnp_CreateBy": "dvc-platform",
            "vnp_TransactionDate": vn_timestamp(created_at or self.clock()),
        })
        answer = self._api("refund", params, REFUND_REQUEST_FIELDS, REFUND_RESPONSE_FIELDS)
        code = str(answer.get("vnp_ResponseCode", ""))
        if code == DUPLICATE_REQUEST:
            # VNPay already holds this very refund (an earlier attempt whose answer was lost) and will not say
            # how it ended: neither done nor refused, so nothing is recorded and a person checks the portal.
            raise ConnectorError(ConnectorErrorKind.REJECTED, "VNPay already received this refund request (94); "
                                 "check its outcome in the VNPay merchant portal", provider_code=code)
        return RefundResult(accepted=code == "00", provider_reference=str(answer.get("vnp_TransactionNo", "")),
                            provider_code=code, message=str(answer.get("vnp_Message", "")))

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        params = {"vnp_TmnCode": self.tmn_code, "vnp_Date": day.strftime("%Y%m%d"), "vnp_RequestId": uuid.uuid4().hex}
        params["vnp_SecureHash"] = query_signature(params, self.hash_secret)
        response = self.http.send("GET", f"{self.api_url}{SETTLEMENT_PATH}", operation="settlement", params=params)
        if response.status != 200:
            raise ConnectorError(ConnectorErrorKind.REJECTED, f"VNPay settlement file: HTTP {response.status}",
                                 provider_code=str(response.status))
        if not signatures_match(hmac_hex("sha512", self.hash_secret, response.body),
                                response.headers.get("X-VNPAY-SecureHash")):
            raise bad_signature("VNPay settlement file signature does not verify")
        return self.parse_settlement(response.body)

    # -- inbound ------------------------------------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        params = request.query
        if not signatures_match(query_signature(params, self.hash_secret), params.get("vnp_SecureHash")):
            raise bad_signature("VNPay IPN signature does not verify")
        if params.get("vnp_TmnCode") != self.tmn_code:
            raise protocol_error("VNPay IPN for another terminal")
        missing = [name for name in ("vnp_TxnRef", "vnp_Amount", "vnp_ResponseCode", "vnp_TransactionNo")
                   if not params.get(name)]
        if missing:
            raise protocol_error(f"VNPay IPN lacks {', '.join(missing)}")
        response_code = params["vnp_ResponseCode"]
        transaction_status = params.get("vnp_TransactionStatus", response_code)
        if response_code == "00" and transaction_status == "00":
            status = ConnectorStatus.SUCCEEDED
        elif response_code in _CANCELLED_CODES:
            status = ConnectorStatus.CANCELLED
        elif transaction_status in _PENDING_STATUSES:
            status = ConnectorStatus.PENDING
        else:
            status = ConnectorStatus.FAILED
        return InboundNotification(
            kind=NotificationKind.PAYMENT_RESULT, reference=params["vnp_TxnRef"], status=status,
            amount=to_dong(params["vnp_Amount"], unit=AMOUNT_UNIT, what="vnp_Amount"),
            provider_reference=params["vnp_TransactionNo"],
            notification_id=f"{params['vnp_TxnRef']}:{params['vnp_TransactionNo']}:{response_code}",
            occurred_at=parse_vn_timestamp(params.get("vnp_PayDate", "")), raw_code=response_code)

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        code, message = REPLIES[outcome]
        # VNPay reads the JSON body, not the HTTP status, and retries until it gets an answer.
        return CallbackReply(200, json.dumps({"RspCode": code, "Message": message}).encode())
