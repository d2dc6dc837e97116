"""Ngân Lượng (checkout API 3.1): pull-only. Nothing is pushed or signed; when the payer comes back with a
token, the platform asks GetTransactionDetail with the md5 merchant password and trusts only that answer."""

from __future__ import annotations

import hashlib
import html
import threading
from collections import OrderedDict
from datetime import date, datetime
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import requests

from payment_service.adapters.connectors.base import (
    Clock,
    ConfigEntry,
    ConnectorBase,
    Scrubber,
    SettlementLayout,
    bad_signature,
    parse_xml,
    protocol_error,
    to_dong,
    utc_now,
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

API_PATH = "/checkout.api.nganluong.post.php"
VERSION = "3.1"
OK = "00"
TOKEN_NOT_FOUND = "81"
TOKEN_MEMORY = 100_000
# transaction_status: 00 paid, 01 paid but held by Ngân Lượng, 02 not paid (yet).
STATUSES = {"00": ConnectorStatus.SUCCEEDED, "01": ConnectorStatus.PENDING, "02": ConnectorStatus.PENDING}

SETTLEMENT_LAYOUT = SettlementLayout(
    reference="order_code", provider_reference="transaction_id", amount="total_amount",
    status="transaction_status", settled_on="settlement_date",
    statuses={"00": ConnectorStatus.SUCCEEDED, "01": ConnectorStatus.PENDING},
)

_PAGES = {
    CallbackOutcome.ACCEPTED: (200, "Thanh toán đã được ghi nhận. Payment received."),
    CallbackOutcome.DUPLICATE: (200, "Thanh toán đã được ghi nhận. Payment received."),
    CallbackOutcome.UNKNOWN_REFERENCE: (404, "Không tìm thấy khoản thanh toán. Payment not found."),
    CallbackOutcome.AMOUNT_MISMATCH: (409, "Số tiền không khớp, vui lòng liên hệ hỗ trợ. Amount does not match."),
    CallbackOutcome.BAD_SIGNATURE: (400, "Không xác minh được giao dịch. The payment could not be verified."),
    CallbackOutcome.REJECTED: (400, "Không xác minh được giao dịch. The payment could not be verified."),
    CallbackOutcome.ERROR: (503, "Đang kiểm tra thanh toán, vui lòng tải lại sau. Still checking; reload later."),
}


def merchant_password(secure_pass: str) -> str:
    """Ngân Lượng authenticates API calls with the md5 of the merchant's secure password (its protocol, not ours)."""
    return hashlib.md5(secure_pass.encode("utf-8")).hexdigest()  # noqa: S324 - mandated by the provider


def _text(element: Element, name: str) -> str:
    return (element.findtext(name) or "").strip()


class NganLuongConnector(ConnectorBase):
    """Ngân Lượng wallet and bank checkout for one merchant site."""

    settlement_layout = SETTLEMENT_LAYOUT

    def __init__(self, code: str, config: ConfigEntry, *, clock: Clock = utc_now,
                 session: requests.Session | None = None) -> None:
        self.base_url = config.url("base_url")
        self.merchant_id = config.text("merchant_id")
        self.secure_pass = config.text("merchant_password")
        self.receiver_email = config.text("receiver_email")
        # The payer comes back to our callback route: that return is what triggers the pull.
        self.return_url = config.url("notify_url")
        self.cancel_url = config.url("cancel_url", self.return_url)
        info = ConnectorInfo(code=code, display_name=config.text("display_name", "Ngân Lượng"), channel="wallet",
                             supports_refund=False, push_notifications=False)
        scrubber = Scrubber(secrets=[self.secure_pass, merchant_password(self.secure_pass)],
                            signature_fields=("merchant_password", "token"),
                            account_fields=("card_number", "buyer_mobile", "bank_account"))
        super().__init__(info, config, scrubber, clock=clock, session=session)
        # Tokens of checkouts this process created or saw returned, only for status queries that arrive without
        # the token (payments created before the core stored it). Bounded and lost on restart: the stored token
        # the core passes as provider_reference is what queries rely on.
        self._tokens: OrderedDict[str, str] = OrderedDict()
        self._tokens_lock = threading.Lock()

    def _remember(self, reference: str, token: str) -> None:
        with self._tokens_lock:
            self._tokens[reference] = token
            self._tokens.move_to_end(reference)
            while len(self._tokens) > TOKEN_MEMORY:
                self._tokens.popitem(last=False)

    def _call(self, operation: str, fields: dict[str, str]) -> Element:
        fields = {"version": VERSION, "merchant_id": self.merchant_id,
                  "merchant_password": merchant_password(self.secure_pass), **fields}
        response = self.http.send("POST", f"{self.base_url}{API_PATH}", operation=operation,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"},
                                  body=urlencode(fields).encode())
        result = parse_xml(response.body.decode("utf-8", "replace"))
        if result is None:
            raise protocol_error(f"{operation}: Ngân Lượng answer is not XML")
        return result

    def create(self, order: PaymentOrder) -> ConnectorResult:
        minutes = max(int((order.expires_at - self.clock()).total_seconds() // 60), 1)
        result = self._call("create", {
            "function": "SetExpressCheckout", "receiver_email": self.receiver_email, "order_code": order.reference,
            "total_amount": str(order.amount), "cur_code": "vnd", "payment_method": "NL",
            "order_description": order.description or order.reference, "return_url": self.return_url,
            "cancel_url": self.cancel_url, "time_limit": str(minutes), "buyer_fullname": order.payer_name,
        })
        code = _text(result, "error_code")
        if code != OK or not _text(result, "checkout_url"):
            raise ConnectorError(ConnectorErrorKind.REJECTED, "Ngân Lượng refused the order", provider_code=code)
        self._remember(order.reference, _text(result, "token"))
        return ConnectorResult(ConnectorStatus.PENDING, provider_reference=_text(result, "token"),
                               redirect_url=_text(result, "checkout_url"), provider_code=code)

    def _detail(self, token: str) -> Element:
        return self._call("detail", {"function": "GetTransactionDetail", "token": token})

    def _result(self, detail: Element) -> tuple[ConnectorStatus, int, str]:
        transaction_status = _text(detail, "transaction_status")
        status = STATUSES.get(transaction_status)
        if status is None:
            raise protocol_error(f"unknown transaction_status {transaction_status[:10]!r}")
        return status, to_dong(_text(detail, "total_amount"), what="total_amount"), transaction_status

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        """Needs the checkout token returned by ``create``, which the core stores and passes as
        ``provider_reference``: Ngân Lượng looks transactions up by token only. Without it (a payment created
        before the core stored tokens), the token this process remembers, if any, is used."""
        if not provider_reference:
            with self._tokens_lock:
                provider_reference = self._tokens.get(reference, "")
        if not provider_reference:
            raise ConnectorError(ConnectorErrorKind.REJECTED,
                                 "Ngân Lượng status needs the checkout token (provider_reference from create)")
        detail = self._detail(provider_reference)
        code = _text(detail, "error_code")
        if code == TOKEN_NOT_FOUND:
            return ConnectorResult(ConnectorStatus.UNKNOWN, provider_code=code, message="Ngân Lượng has no such token")
        if code != OK:
            raise ConnectorError(ConnectorErrorKind.REJECTED, "Ngân Lượng refused the query", provider_code=code)
        if _text(detail, "order_code") != reference:
            raise protocol_error("detail: answer is about another order")
        status, paid, transaction_status = self._result(detail)
        return ConnectorResult(status, provider_reference=_text(detail, "transaction_id"), amount=paid,
                               provider_code=transaction_status)

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        return RefundResult(accepted=False, provider_code="UNSUPPORTED",
                            message="Ngân Lượng refunds are made in its merchant portal")

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        fields = {"version": VERSION, "merchant_id": self.merchant_id,
                  "merchant_password": merchant_password(self.secure_pass), "function": "GetSettlementFile",
                  "date": day.isoformat()}
        response = self.http.send("POST", f"{self.base_url}{API_PATH}", operation="settlement",
                                  headers={"Content-Type": "application/x-www-form-urlencoded"},
                                  body=urlencode(fields).encode())
        if response.status != 200 or not response.headers.get("Content-Type", "").startswith("text/csv"):
            raise ConnectorError(ConnectorErrorKind.REJECTED, "Ngân Lượng has no settlement file for that day",
                                 provider_code=str(response.status))
        return self.parse_settlement(response.body)

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        """The payer's return carries only a token; everything else comes from the authenticated pull, so a forged
        return can at worst make us ask about a token Ngân Lượng does not know."""
        token = request.query.get("token", "").strip()
        if not token or len(token) > 128:
            raise bad_signature("Ngân Lượng return has no token")
        detail = self._detail(token)
        code = _text(detail, "error_code")
        if code != OK:
            raise bad_signature(f"Ngân Lượng does not confirm this token (error {code[:8]})")
        reference = _text(detail, "order_code")
        status, paid, transaction_status = self._result(detail)
        self._remember(reference, token)
        transaction_id = _text(detail, "transaction_id")
        return InboundNotification(
            kind=NotificationKind.PAYMENT_RESULT, reference=reference, status=status, amount=paid,
            provider_reference=transaction_id, notification_id=f"{reference}:{transaction_id}:{transaction_status}",
            raw_code=transaction_status)

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        # This "callback" is the payer's browser coming back, so the answer is a page for a person.
        status, message = _PAGES[outcome]
        page = (f"<!doctype html><html lang=\"vi\"><meta charset=\"utf-8\"><title>Cổng Dịch vụ công</title>"
                f"<p>{html.escape(message)}</p></html>")
        return CallbackReply(status, page.encode("utf-8"), "text/html; charset=utf-8")
