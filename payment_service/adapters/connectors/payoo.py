"""Payoo: order XML with CheckSum = SHA-512(key + XML), XML NotifyData notifications signed over KeyFields,
and a JSON business API (query, refund, settlement) whose RequestData/ResponseData carry SHA-512 checksums."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import parse_qs, quote
from xml.sax.saxutils import escape

import requests

from payment_service.adapters.connectors.base import (
    Clock,
    ConfigEntry,
    ConnectorBase,
    Scrubber,
    SettlementLayout,
    bad_signature,
    digest_hex,
    parse_vn_timestamp,
    parse_xml,
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

CREATE_PATH = "/v2/paynow/order/create"
QUERY_PATH = "/api/v2/GetOrderInfo"
REFUND_PATH = "/api/v2/RefundOrder"
SETTLEMENT_PATH = "/api/v2/GetSettlement"

# A notification whose KeyFields leave out any of these is not trusted: its signature would not cover what we act on.
REQUIRED_KEY_FIELDS = ("OrderNo", "OrderCashAmount", "State", "ShopID")
STATES: Mapping[str, ConnectorStatus] = {
    "PAYMENT_RECEIVED": ConnectorStatus.SUCCEEDED,
    "PAYMENT_FAILED": ConnectorStatus.FAILED,
    "PAYMENT_CANCELLED": ConnectorStatus.CANCELLED,
}
# GetOrderInfo OrderStatus: 1 paid, 0 waiting for the payer, -1 failed, -2 cancelled or expired.
ORDER_STATUSES: Mapping[int, ConnectorStatus] = {
    1: ConnectorStatus.SUCCEEDED, 0: ConnectorStatus.PENDING, -1: ConnectorStatus.FAILED,
    -2: ConnectorStatus.CANCELLED,
}
OK = 0
ORDER_NOT_FOUND = 2
MAX_NOTIFICATION_BYTES = 64 * 1024
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

# Payoo's reply to a notification is unconfirmed. We acknowledge (200 NOTIFY_RECEIVED) only what we applied or had
# already applied, refuse with 400 what a retry cannot fix, and answer 500 to what a retry can.
_ACKNOWLEDGED = frozenset({CallbackOutcome.ACCEPTED, CallbackOutcome.DUPLICATE})

SETTLEMENT_LAYOUT = SettlementLayout(
    reference="OrderNo", provider_reference="PurchaseNo", amount="OrderCashAmount", status="State",
    settled_on="SettlementDate", statuses=STATES, date_format="%d/%m/%Y",
)


def checksum(secret: str, text: str) -> str:
    """SHA-512 hex of the key followed by the text: Payoo's CheckSum for orders and API envelopes."""
    return digest_hex("sha512", secret + text)


def key_fields_signature(secret: str, values: list[str]) -> str:
    """SHA-512 hex of the key, then '|' and each KeyFields value in order."""
    return digest_hex("sha512", secret + "".join("|" + value for value in values))


def order_xml(fields: Mapping[str, str]) -> str:
    inner = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields.items())
    return f"<shops><shop>{inner}</shop></shops>"


class PayooConnector(ConnectorBase):
    """Payoo for one shop (ShopID) of one business account."""

    settlement_layout = SETTLEMENT_LAYOUT

    def __init__(self, code: str, config: ConfigEntry, *, clock: Clock = utc_now,
                 session: requests.Session | None = None) -> None:
        self.base_url = config.url("base_url")
        self.business_username = config.text("business_username")
        self.shop_id = config.text("shop_id")
        self.shop_title = config.text("shop_title", "DVCQG")
        self.shop_domain = config.url("shop_domain", "https://dichvucong.gov.vn")
        self.checksum_key = config.text("checksum_key")
        self.api_username = config.text("api_username")
        self.api_password = config.text("api_password")
        self.api_signature = config.text("api_signature")
        self.notify_url = config.url("notify_url")
        self.return_url = config.url("return_url", "")
        info = ConnectorInfo(code=code, display_name=config.text("display_name", "Payoo"), channel="gateway")
        scrubber = Scrubber(secrets=[self.checksum_key, self.api_password, self.api_signature],
                            signature_fields=("Signature", "CheckSum", "SecureHash", "APIPassword",
                                              "APISignature"),
                            account_fields=("CardNumber", "BankAccount", "AccountNumber"))
        super().__init__(info, config, scrubber, clock=clock, session=session)

    # -- outbound ------------------------------------------------------------------------------------------------

    def create(self, order: PaymentOrder) -> ConnectorResult:
        xml = order_xml({
            "session": order.reference, "username": self.business_username, "shop_id": self.shop_id,
            "shop_title": self.shop_title, "shop_domain": self.shop_domain,
            "shop_back_url": order.return_url or self.return_url or self.shop_domain,
            "order_no": order.reference, "order_cash_amount": str(order.amount),
            "order_ship_date": self.clock().strftime("%d/%m/%Y"), "order_ship_days": "0",
            "order_description": quote(order.description or order.reference),
            "notify_url": self.notify_url, "validity_time": vn_timestamp(order.expires_at),
        })
        body = f"data={quote(xml)}&checksum={checksum(self.checksum_key, xml)}&refer={quote(self.shop_domain)}"
        response = self.http.send("POST", f"{self.base_url}{CREATE_PATH}", operation="create",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"},
                                  body=body.encode())
        answer = response.json()
        # The create answer only carries the payer's URL; nothing in it can change a payment's status.
        if not isinstance(answer, dict) or answer.get("result") != "success":
            code = str(answer.get("errorcode", response.status)) if isinstance(answer, dict) else str(response.status)
            raise ConnectorError(ConnectorErrorKind.REJECTED, "Payoo refused the order", provider_code=code)
        order_answer = answer.get("order") or {}
        if not order_answer.get("payment_url"):
            raise protocol_error("Payoo answer has no payment_url")
        return ConnectorResult(ConnectorStatus.PENDING, redirect_url=str(order_answer["payment_url"]))

    def _api(self, operation: str, path: str, request_data: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(request_data, separators=(",", ":"))
        headers = {"Content-Type": "application/json", "APIUsername": self.api_username,
                   "APIPassword": self.api_password, "APISignature": self.api_signature}
        envelope = {"RequestData": text, "SecureHash": checksum(self.checksum_key, text)}
        response = self.http.send("POST", f"{self.base_url}{path}", operation=operation, headers=headers,
                                  body=json.dumps(envelope).encode())
        answer = response.json()
        if not isinstance(answer, dict) or not isinstance(answer.get("ResponseData"), str):
            raise protocol_error(f"{operation}: Payoo answer has no ResponseData")
        if not signatures_match(checksum(self.checksum_key, answer["ResponseData"]), answer.get("SecureHash")):
            raise bad_signature(f"{operation}: Payoo answer checksum does not verify")
        try:
            data = json.loads(answer["ResponseData"])
            code = int(data["ResponseCode"])
        except (ValueError, KeyError, TypeError):
            raise protocol_error(f"{operation}: Payoo ResponseData is malformed") from None
        data["ResponseCode"] = code
        return dict(data)

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        data = self._api("query", QUERY_PATH, {"OrderId": reference, "ShopId": self.shop_id})
        code = data["ResponseCode"]
        if code == ORDER_NOT_FOUND:
            return ConnectorResult(ConnectorStatus.UNKNOWN, provider_code=str(code), message="Payoo has no such order")
        if code != OK:
            raise ConnectorError(ConnectorErrorKind.REJECTED, f"Payoo query refused: {code}", provider_code=str(code))
        if str(data.get("OrderNo", "")) != reference:
            raise protocol_error("query: answer is about another order")
        status = ORDER_STATUSES.get(int(data.get("OrderStatus", 0)))
        if status is None:
            raise protocol_error(f"query: unknown OrderStatus {data.get('OrderStatus')!r}")
        return ConnectorResult(status, provider_reference=str(data.get("PurchaseNo", "")),
                               amount=to_dong(data.get("OrderCash", ""), what="OrderCash"),
                               provider_code=str(data.get("OrderStatus")),
                               paid_at=parse_vn_timestamp(str(data.get("PaymentDate", ""))))

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        data = self._api("refund", REFUND_PATH, {"OrderId": reference, "Money": amount, "RefundId": refund_id,
                                                 "Description": f"Refund {reference}"})
        return RefundResult(accepted=data["ResponseCode"] == OK, provider_reference=str(data.get("RefundNo", "")),
                            provider_code=str(data["ResponseCode"]), message=str(data.get("Message", "")))

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        data = self._api("settlement", SETTLEMENT_PATH, {"ShopId": self.shop_id, "Date": day.strftime("%d/%m/%Y")})
        if data["ResponseCode"] != OK or not isinstance(data.get("File"), str):
            raise ConnectorError(ConnectorErrorKind.REJECTED, "Payoo has no settlement file for that day",
                                 provider_code=str(data["ResponseCode"]))
        return self.parse_settlement(data["File"].encode("utf-8"))

    # -- inbound ------------------------------------------------------------------------------------------------

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        if len(request.body) > MAX_NOTIFICATION_BYTES:
            raise bad_signature("Payoo notification too large")
        form = parse_qs(request.body.decode("utf-8", "replace"))
        package = parse_xml((form.get("NotifyData") or [""])[0])
        if package is None:
            raise bad_signature("Payoo NotifyData is not acceptable XML")
        data_text = package.findtext("Data") or ""
        received = package.findtext("Signature") or ""
        key_fields = [name for name in (package.findtext("KeyFields") or "").split("|") if name]
        if not all(_FIELD_NAME.fullmatch(name) for name in key_fields):
            raise bad_signature("Payoo KeyFields names a field that cannot exist")
        try:
            data = parse_xml(base64.b64decode(data_text, validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            data = None
        if data is None:
            raise bad_signature("Payoo notification Data is not base64-encoded XML")
        values = {name: (data.findtext(f".//{name}") or "") for name in key_fields}
        if not signatures_match(key_fields_signature(self.checksum_key, [values[n] for n in key_fields]), received):
            raise bad_signature("Payoo notification signature does not verify")
        uncovered = [name for name in REQUIRED_KEY_FIELDS if name not in key_fields]
        if uncovered:
            raise bad_signature(f"Payoo signature does not cover {', '.join(uncovered)}")
        if values["ShopID"] != self.shop_id:
            raise protocol_error("Payoo notification for another shop")
        status = STATES.get(values["State"])
        if status is None:
            raise protocol_error(f"Payoo notification state {values['State'][:30]!r} is unknown")
        # Payoo's usual KeyFields leave PurchaseNo out, so a replayed notice could carry any PurchaseNo: trusted
        # (printed on the receipt, part of the dedup id) only when the signature covers it.
        purchase = values.get("PurchaseNo", "")
        return InboundNotification(
            kind=NotificationKind.PAYMENT_RESULT, reference=values["OrderNo"], status=status,
            amount=to_dong(values["OrderCashAmount"], what="OrderCashAmount"), provider_reference=purchase,
            notification_id=f"{values['OrderNo']}:{purchase}:{values['State']}",
            occurred_at=parse_vn_timestamp(data.findtext(".//PaymentDate") or ""), raw_code=values["State"])

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        if outcome in _ACKNOWLEDGED:
            return CallbackReply(200, b"NOTIFY_RECEIVED", "text/plain")
        status = 500 if outcome is CallbackOutcome.ERROR else 400
        return CallbackReply(status, f"NOTIFY_REJECTED {outcome.value.upper()}".encode(), "text/plain")
