"""MoMo (API v2): HMAC-SHA256 over raw key=value strings in alphabetical order, JSON IPN, query and refund."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import requests

from payment_service.adapters.connectors.base import (
    Clock,
    ConfigEntry,
    ConnectorBase,
    Scrubber,
    SettlementLayout,
    bad_signature,
    hmac_hex,
    protocol_error,
    signatures_match,
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

CREATE_PATH = "/v2/gateway/api/create"
QUERY_PATH = "/v2/gateway/api/query"
REFUND_PATH = "/v2/gateway/api/refund"
SETTLEMENT_PATH = "/v2/gateway/api/settlement"

# The fields each message signs (accessKey is never sent in the body, only signed). MoMo's rule is a raw
# "name=value&..." string with the names in alphabetical order, so the tuples are kept sorted.
CREATE_FIELDS = ("accessKey", "amount", "extraData", "ipnUrl", "orderId", "orderInfo", "partnerCode",
                 "redirectUrl", "requestId", "requestType")
QUERY_FIELDS = ("accessKey", "orderId", "partnerCode", "requestId")
REFUND_FIELDS = ("accessKey", "amount", "description", "orderId", "partnerCode", "requestId", "transId")
IPN_FIELDS = ("accessKey", "amount", "extraData", "message", "orderId", "orderInfo", "orderType", "partnerCode",
              "payType", "requestId", "responseTime", "resultCode", "transId")
# Query and refund answers: MoMo signs them the same way; the field lists are our reading of its public SDKs.
QUERY_ANSWER_FIELDS = ("accessKey", "amount", "extraData", "message", "orderId", "partnerCode", "payType",
                       "requestId", "responseTime", "resultCode", "transId")
REFUND_ANSWER_FIELDS = ("accessKey", "amount", "message", "orderId", "partnerCode", "requestId", "responseTime",
                        "resultCode", "transId")
SETTLEMENT_FIELDS = ("accessKey", "date", "partnerCode", "requestId")

SUCCESS = 0
# 1000 initiated (waiting for the payer), 7000/7002 processing, 9000 authorised but not captured.
_PENDING_CODES = frozenset({1000, 7000, 7002, 8000, 9000})   # 8000: waiting for the payer to confirm again
# 1005 the payment link expired, 1006 the payer declined, 1003 cancelled.
_CANCELLED_CODES = frozenset({1003, 1005, 1006})
# The payer's wallet or bank refused: 1001 insufficient funds, 1002 issuer declined, 1004 over the limit,
# 1007 inactive account, 1026 restricted by a promotion, 4001 restricted account, 4100 the payer failed to log in.
_DECLINED_CODES = frozenset({1001, 1002, 1004, 1007, 1026, 4001, 4100})
NOT_FOUND = 42

SETTLEMENT_LAYOUT = SettlementLayout(
    reference="orderId", provider_reference="transId", amount="amount", status="resultCode", settled_on="date",
    statuses={"0": ConnectorStatus.SUCCEEDED, "1006": ConnectorStatus.CANCELLED, "1001": ConnectorStatus.FAILED},
)


def raw_signature(fields: Mapping[str, Any], names: tuple[str, ...], secret_key: str) -> str:
    """HMAC-SHA256 (hex) over ``name=value`` pairs joined by '&', names sorted alphabetically."""
    raw = "&".join(f"{name}={fields.get(name, '')}" for name in sorted(names))
    return hmac_hex("sha256", secret_key, raw)


def status_for(result_code: int) -> ConnectorStatus:
    if result_code == SUCCESS:
        return ConnectorStatus.SUCCEEDED
    if result_code in _PENDING_CODES:
        return ConnectorStatus.PENDING
    if result_code in _CANCELLED_CODES:
        return ConnectorStatus.CANCELLED
    if result_code in _DECLINED_CODES:
        return ConnectorStatus.FAILED
    # Anything else (10 maintenance, 43 already being processed, 99 unknown error...) says nothing about whether
    # the payer paid: never a failure that would close the payment.
    return ConnectorStatus.UNKNOWN


class MomoConnector(ConnectorBase):
    """MoMo e-wallet for one partner code."""

    settlement_layout = SETTLEMENT_LAYOUT

    def __init__(self, code: str, config: ConfigEntry, *, clock: Clock = utc_now,
                 session: requests.Session | None = None) -> None:
        self.base_url = config.url("base_url")
        self.partner_code = config.text("partner_code")
        self.access_key = config.text("access_key")
        self.secret_key = config.text("secret_key")
        self.ipn_url = config.url("notify_url")
        self.redirect_url = config.url("return_url", "")
        self.request_type = config.text("request_type", "captureWallet")
        info = ConnectorInfo(code=code, display_name=config.text("display_name", "MoMo"), channel="wallet")
        scrubber = Scrubber(secrets=[self.secret_key, self.access_key], signature_fields=("signature",),
                            account_fields=("accountNumber", "phoneNumber"))
        super().__init__(info, config, scrubber, clock=clock, session=session)

    def _signed(self, fields: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        fields["signature"] = raw_signature({**fields, "accessKey": self.access_key}, names, self.secret_key)
        return fields

    def _post(self, operation: str, path: str, fields: dict[str, Any],
              answer_fields: tuple[str, ...] | None) -> dict[str, Any]:
        response = self.http.send("POST", f"{self.base_url}{path}", operation=operation,
                                  headers={"Content-Type": "application/json; charset=UTF-8"},
                                  body=json.dumps(fields).encode())
        answer = response.json()
        if not isinstance(answer, dict) or "resultCode" not in answer:
            raise protocol_error(f"{operation}: MoMo answer has no resultCode")
        if answer_fields is not None and not signatures_match(
                raw_signature({**answer, "accessKey": self.access_key}, answer_fields, self.secret_key),
                answer.get("signature")):
            raise bad_signature(f"{operation}: MoMo answer signature does not verify")
        if str(answer.get("orderId", fields["orderId"])) != fields["orderId"]:
            raise protocol_error(f"{operation}: answer is about another order")
        return answer

    @staticmethod
    def _code(answer: Mapping[str, Any]) -> int:
        try:
            return int(answer["resultCode"])
        except (TypeError, ValueError):
            raise protocol_error(f"MoMo resultCode is not a number: {str(answer['resultCode'])[:20]!r}") from None

    def create(self, order: PaymentOrder) -> ConnectorResult:
        fields = self._signed({
            "partnerCode": self.partner_code, "requestId": uuid.uuid4().hex, "amount": order.amount,
            "orderId": order.reference, "orderInfo": order.description or order.reference,
            "redirectUrl": order.return_url or self.redirect_url or self.ipn_url, "ipnUrl": self.ipn_url,
            "requestType": self.request_type, "extraData": "", "lang": "vi",
        }, CREATE_FIELDS)
        # The create answer only carries the payer's URL; nothing in it can change a payment's status.
        answer = self._post("create", CREATE_PATH, fields, None)
        code = self._code(answer)
        if code != SUCCESS or not answer.get("payUrl"):
            raise ConnectorError(ConnectorErrorKind.REJECTED, f"MoMo refused the order: {answer.get('message', '')}",
                                 provider_code=str(code))
        return ConnectorResult(ConnectorStatus.PENDING, redirect_url=str(answer["payUrl"]), provider_code=str(code))

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        fields = self._signed({"partnerCode": self.partner_code, "requestId": uuid.uuid4().hex,
                               "orderId": reference, "lang": "vi"}, QUERY_FIELDS)
        answer = self._post("query", QUERY_PATH, fields, QUERY_ANSWER_FIELDS)
        code = self._code(answer)
        if code == NOT_FOUND:
            return ConnectorResult(ConnectorStatus.UNKNOWN, provider_code=str(code), message="MoMo has no such order")
        status = status_for(code)
        return ConnectorResult(status, provider_reference=str(answer.get("transId", "") or ""),
                               amount=to_dong(answer.get("amount", 0), what="amount"), provider_code=str(code),
                               message=str(answer.get("message", "")),
                               paid_at=_millis(answer.get("responseTime")) if status is ConnectorStatus.SUCCEEDED
                               else None)

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        fields = self._signed({"partnerCode": self.partner_code, "orderId": refund_id, "requestId": refund_id,
                               "amount": amount, "transId": provider_reference, "lang": "vi",
                               "description": f"Refund {reference}"}, REFUND_FIELDS)
        answer = self._post("refund", REFUND_PATH, fields, REFUND_ANSWER_FIELDS)
        code = self._code(answer)
        return RefundResult(accepted=code == SUCCESS, provider_reference=str(answer.get("transId", "")),
                            provider_code=str(code), message=str(answer.get("message", "")))

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        fields = {"partnerCode": self.partner_code, "requestId": uuid.uuid4().hex, "date": day.isoformat()}
        self._signed(fields, SETTLEMENT_FIELDS)
        response = self.http.send("GET", f"{self.base_url}{SETTLEMENT_PATH}", operation="settlement",
                                  params={key: str(value) for key, value in fields.items()})
        if response.status != 200:
            raise ConnectorError(ConnectorErrorKind.REJECTED, f"MoMo settlement file: HTTP {response.status}",
                                 provider_code=str(response.status))
        if not signatures_match(hmac_hex("sha256", self.secret_key, response.body),
                                response.headers.get("X-MoMo-Signature")):
            raise bad_signature("MoMo settlement file signature does not verify")
        return self.parse_settlement(response.body)

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        try:
            fields = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise bad_signature("MoMo IPN is not JSON") from None
        if not isinstance(fields, dict) or not signatures_match(
                raw_signature({**fields, "accessKey": self.access_key}, IPN_FIELDS, self.secret_key),
                fields.get("signature")):
            raise bad_signature("MoMo IPN signature does not verify")
        if fields.get("partnerCode") != self.partner_code:
            raise protocol_error("MoMo IPN for another partner")
        code = self._code(fields)
        return InboundNotification(
            kind=NotificationKind.PAYMENT_RESULT, reference=str(fields.get("orderId", "")), status=status_for(code),
            amount=to_dong(fields.get("amount", ""), what="amount"),
            provider_reference=str(fields.get("transId", "")),
            notification_id=f"{fields.get('orderId', '')}:{fields.get('transId', '')}:{code}",
            occurred_at=_millis(fields.get("responseTime")), raw_code=str(code))

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        # MoMo's expected answer is unconfirmed: 204 acknowledges (stop retrying). Anything we could not
        # apply gets a 4xx so it shows as undelivered on MoMo's side; ERROR gets 5xx so MoMo retries.
        if outcome in (CallbackOutcome.ACCEPTED, CallbackOutcome.DUPLICATE):
            return CallbackReply(204, b"")
        status = 500 if outcome is CallbackOutcome.ERROR else 400
        return CallbackReply(status, json.dumps({"resultCode": status, "message": outcome.value}).encode())


def _millis(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
