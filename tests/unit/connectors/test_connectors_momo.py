"""MoMo connector against canned MoMo v2 messages signed here, independently, by MoMo's raw-string rule."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests
from connector_testkit import NOW, clock, entry, order

from payment_service.adapters.connectors.momo import MomoConnector
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
)

PARTNER = "MOMOTEST0001"
ACCESS = "TestAccessKey01"
SECRET = "TestMoMoSecretKey0123456789abcdef"


def raw_sign(pairs: list[tuple[str, object]]) -> str:
    """MoMo v2: HMAC-SHA256 hex over 'k1=v1&k2=v2...' written in the documented (alphabetical) order."""
    raw = "&".join(f"{name}={value}" for name, value in pairs)
    return hmac.new(SECRET.encode(), raw.encode(), hashlib.sha256).hexdigest()


def ipn(**changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "partnerCode": PARTNER, "orderId": "DVC7K2M9QX4TB1HZ", "requestId": "req-1", "amount": 150000,
        "orderInfo": "DVC7K2M9QX4TB1HZ LE PHI", "orderType": "momo_wallet", "transId": 4088878653,
        "resultCode": 0, "message": "Thành công.", "payType": "qr", "responseTime": 1763780100000, "extraData": ""}
    body.update(changes)
    # The IPN signature string as MoMo documents it: accessKey&amount&extraData&message&orderId&orderInfo&
    # orderType&partnerCode&payType&requestId&responseTime&resultCode&transId.
    body["signature"] = raw_sign([
        ("accessKey", ACCESS), ("amount", body["amount"]), ("extraData", body["extraData"]),
        ("message", body["message"]), ("orderId", body["orderId"]), ("orderInfo", body["orderInfo"]),
        ("orderType", body["orderType"]), ("partnerCode", body["partnerCode"]), ("payType", body["payType"]),
        ("requestId", body["requestId"]), ("responseTime", body["responseTime"]), ("resultCode", body["resultCode"]),
        ("transId", body["transId"])])
    return body


def post(body: dict[str, object] | bytes) -> CallbackRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    return CallbackRequest("POST", {}, {"content-type": "application/json"}, raw)


@pytest.fixture
def connector(session: requests.Session) -> MomoConnector:
    return MomoConnector("momo", entry("momo", base_url="https://test-payment.momo.test", partner_code=PARTNER,
                                       access_key=ACCESS, secret_key=SECRET, timeout_seconds=2),
                         clock=clock, session=session)


def test_a_valid_ipn_is_parsed(connector):
    notification = connector.parse_callback(post(ipn()))
    assert (notification.reference, notification.amount, notification.status) == (
        "DVC7K2M9QX4TB1HZ", 150_000, ConnectorStatus.SUCCEEDED)
    assert notification.provider_reference == "4088878653"
    assert notification.occurred_at is not None and notification.occurred_at.year == 2025


@pytest.mark.parametrize("forge", [
    lambda body: {**body, "amount": 1000},
    lambda body: {**body, "resultCode": 1006},
    lambda body: {**body, "signature": "0" * 64},
    lambda body: {k: v for k, v in body.items() if k != "signature"},
], ids=["tampered-amount", "tampered-result", "wrong-signature", "unsigned"])
def test_forged_ipns_are_refused(connector, forge):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(post(forge(ipn())))
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_a_body_that_is_not_json_is_a_bad_signature(connector):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(post(b"amount=1&signature=x"))
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_a_duplicate_ipn_has_the_same_notification_id(connector):
    first, again = connector.parse_callback(post(ipn())), connector.parse_callback(post(ipn()))
    assert first.notification_id == again.notification_id


def test_a_fractional_amount_is_never_rounded(connector):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(post(ipn(amount=150000.5)))
    assert failure.value.kind is ConnectorErrorKind.PROTOCOL


def test_a_wrong_amount_is_reported_as_paid(connector):
    assert connector.parse_callback(post(ipn(amount=149000))).amount == 149_000


def test_an_unknown_order_still_parses_for_the_core_to_answer(connector):
    assert connector.parse_callback(post(ipn(orderId="UNKNOWN1"))).reference == "UNKNOWN1"


@pytest.mark.parametrize(("code", "status"), [
    (1006, ConnectorStatus.CANCELLED), (1005, ConnectorStatus.CANCELLED), (1001, ConnectorStatus.FAILED),
    (7000, ConnectorStatus.PENDING), (8000, ConnectorStatus.PENDING),
    # MoMo's own trouble says nothing about the payer: never a failure that would close the payment.
    (10, ConnectorStatus.UNKNOWN), (43, ConnectorStatus.UNKNOWN), (99, ConnectorStatus.UNKNOWN)])
def test_result_codes(connector, code, status):
    assert connector.parse_callback(post(ipn(resultCode=code))).status is status


@pytest.mark.parametrize(("outcome", "status"), [
    (CallbackOutcome.ACCEPTED, 204), (CallbackOutcome.DUPLICATE, 204), (CallbackOutcome.UNKNOWN_REFERENCE, 400),
    (CallbackOutcome.AMOUNT_MISMATCH, 400), (CallbackOutcome.BAD_SIGNATURE, 400), (CallbackOutcome.ERROR, 500),
])
def test_replies(connector, outcome, status):
    reply = connector.reply(outcome)
    assert reply.status_code == status
    assert (reply.body == b"") == (status == 204)


def test_create_signs_the_documented_string_and_returns_the_pay_url(connector, transport):
    transport.handler = lambda request: (200, {}, json.dumps({
        "partnerCode": PARTNER, "orderId": "DVC7K2M9QX4TB1HZ", "requestId": "x", "amount": 150000,
        "resultCode": 0, "message": "ok", "payUrl": "https://pay.momo.test/x"}).encode())
    result = connector.create(order())
    sent = transport.last_json()
    assert sent["signature"] == raw_sign([
        ("accessKey", ACCESS), ("amount", 150000), ("extraData", ""), ("ipnUrl", "https://dvc.test/callbacks/momo"),
        ("orderId", "DVC7K2M9QX4TB1HZ"), ("orderInfo", sent["orderInfo"]), ("partnerCode", PARTNER),
        ("redirectUrl", "https://dvc.test/pay/return"), ("requestId", sent["requestId"]),
        ("requestType", "captureWallet")])
    assert "accessKey" not in sent and "secretKey" not in json.dumps(sent)
    assert result.redirect_url == "https://pay.momo.test/x"


def test_create_refused_by_momo_is_rejected(connector, transport):
    transport.handler = lambda request: (200, {}, json.dumps({"orderId": "DVC7K2M9QX4TB1HZ", "resultCode": 41,
                                                              "message": "duplicate"}).encode())
    with pytest.raises(ConnectorError) as failure:
        connector.create(order())
    assert (failure.value.kind, failure.value.provider_code) == (ConnectorErrorKind.REJECTED, "41")


def query_answer(result_code: int, amount: int = 150000, sign: bool = True) -> bytes:
    answer: dict[str, object] = {"partnerCode": PARTNER, "orderId": "DVC7K2M9QX4TB1HZ", "requestId": "q1",
                                 "extraData": "", "amount": amount, "transId": 4088878653, "payType": "qr",
                                 "resultCode": result_code, "message": "m", "responseTime": 1763780100000}
    answer["signature"] = raw_sign([
        ("accessKey", ACCESS), ("amount", answer["amount"]), ("extraData", ""), ("message", "m"),
        ("orderId", "DVC7K2M9QX4TB1HZ"), ("partnerCode", PARTNER), ("payType", "qr"), ("requestId", "q1"),
        ("responseTime", 1763780100000), ("resultCode", result_code), ("transId", 4088878653)])
    if not sign:
        answer["amount"] = 1
    return json.dumps(answer).encode()


def test_query_verifies_the_answer(connector, transport):
    transport.handler = lambda request: (200, {}, query_answer(0))
    result = connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW)
    assert (result.status, result.amount, result.provider_reference) == (ConnectorStatus.SUCCEEDED, 150_000,
                                                                        "4088878653")
    sent = transport.last_json()
    assert sent["signature"] == raw_sign([("accessKey", ACCESS), ("orderId", "DVC7K2M9QX4TB1HZ"),
                                          ("partnerCode", PARTNER), ("requestId", sent["requestId"])])
    transport.handler = lambda request: (200, {}, query_answer(0, sign=False))
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW)
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_query_of_an_order_momo_does_not_know(connector, transport):
    transport.handler = lambda request: (200, {}, query_answer(42))
    assert connector.query_status("DVC7K2M9QX4TB1HZ", amount=1, created_at=NOW).status is ConnectorStatus.UNKNOWN


def test_refund(connector, transport):
    answer: dict[str, object] = {"partnerCode": PARTNER, "orderId": "refund-1", "requestId": "refund-1",
                                 "amount": 50000, "transId": 55501, "resultCode": 0, "message": "ok",
                                 "responseTime": 1}
    answer["signature"] = raw_sign([
        ("accessKey", ACCESS), ("amount", 50000), ("message", "ok"), ("orderId", "refund-1"), ("partnerCode", PARTNER),
        ("requestId", "refund-1"), ("responseTime", 1), ("resultCode", 0), ("transId", 55501)])
    transport.handler = lambda request: (200, {}, json.dumps(answer).encode())
    result = connector.refund("DVC7K2M9QX4TB1HZ", "4088878653", 50_000, "refund-1")
    sent = transport.last_json()
    assert sent["transId"] == "4088878653" and sent["amount"] == 50000
    assert result.accepted and result.provider_reference == "55501"
