"""Payoo connector against NotifyData packages and API envelopes built here by Payoo's checksum rules."""

from __future__ import annotations

import base64
import hashlib
import json
from urllib.parse import parse_qs, unquote, urlencode

import pytest
import requests
from connector_testkit import NOW, clock, entry, order

from payment_service.adapters.connectors.payoo import PayooConnector
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
)

KEY = "TestPayooChecksumKey0123"
SHOP = "777"
KEY_FIELDS = ["PaymentMethod", "State", "Session", "BusinessUsername", "ShopID", "ShopTitle", "ShopDomain",
              "ShopBackUrl", "OrderNo", "OrderCashAmount", "StartShippingDate", "ShippingDays", "OrderDescription",
              "NotifyUrl", "PaymentExpireDate"]


def sha512(text: str) -> str:
    return hashlib.sha512(text.encode()).hexdigest()


def notify(key_fields: list[str] | None = None, key: str = KEY, doctype: str = "", **changes: str) -> CallbackRequest:
    values = {"PaymentMethod": "E_WALLET", "State": "PAYMENT_RECEIVED", "Session": "DVC7K2M9QX4TB1HZ",
              "BusinessUsername": "dvc", "ShopID": SHOP, "ShopTitle": "DVC", "ShopDomain": "https://dvc.test",
              "ShopBackUrl": "https://dvc.test/back", "OrderNo": "DVC7K2M9QX4TB1HZ", "OrderCashAmount": "150000",
              "StartShippingDate": "22/11/2026", "ShippingDays": "0", "OrderDescription": "LE PHI",
              "NotifyUrl": "https://dvc.test/callbacks/payoo", "PaymentExpireDate": "20261122120000",
              "PurchaseNo": "PO998877"}
    values.update(changes)
    names = KEY_FIELDS if key_fields is None else key_fields
    data = doctype + "<PaymentNotification>" + "".join(f"<{k}>{v}</{k}>" for k, v in values.items()) + \
        "</PaymentNotification>"
    # Payoo: SHA-512 of the checksum key, then "|" and each KeyFields value in order.
    signature = sha512(key + "".join("|" + values.get(name, "") for name in names))
    package = (f"<PayooConnectionPackage><Data>{base64.b64encode(data.encode()).decode()}</Data>"
               f"<Signature>{signature}</Signature><KeyFields>{'|'.join(names)}</KeyFields></PayooConnectionPackage>")
    return CallbackRequest("POST", {}, {"content-type": "application/x-www-form-urlencoded"},
                           urlencode({"NotifyData": package}).encode())


@pytest.fixture
def connector(session: requests.Session) -> PayooConnector:
    return PayooConnector("payoo", entry("payoo", base_url="https://payoo.test", business_username="dvc",
                                         shop_id=SHOP, checksum_key=KEY, api_username="api", api_password="ApiPass0001",
                                         api_signature="ApiSign0001", timeout_seconds=2), clock=clock, session=session)


def test_a_valid_notification_is_parsed(connector):
    notification = connector.parse_callback(notify(key_fields=[*KEY_FIELDS, "PurchaseNo"]))
    assert (notification.reference, notification.amount, notification.status, notification.provider_reference) == (
        "DVC7K2M9QX4TB1HZ", 150_000, ConnectorStatus.SUCCEEDED, "PO998877")


def test_a_purchase_number_the_signature_leaves_out_is_not_trusted(connector):
    # Payoo's usual KeyFields do not cover PurchaseNo: a replay with another one must be the same notice, and
    # the number never reaches the receipt.
    genuine = connector.parse_callback(notify())
    edited = connector.parse_callback(notify(PurchaseNo="FORGED123"))
    assert genuine.provider_reference == edited.provider_reference == ""
    assert genuine.notification_id == edited.notification_id


@pytest.mark.parametrize("request_", [
    notify(key="another-key"),
    notify(key_fields=["OrderNo", "OrderCashAmount", "ShopID"]),         # State left unsigned
    notify(key_fields=[]),
    notify(doctype='<!DOCTYPE x [<!ENTITY e "boom">]>'),
    CallbackRequest("POST", {}, {}, b"NotifyData=%3Cnot-xml"),
    CallbackRequest("POST", {}, {}, urlencode({"NotifyData": "<P><Data>!!!</Data><Signature>x</Signature>"
                                                             "<KeyFields>OrderNo</KeyFields></P>"}).encode()),
    CallbackRequest("POST", {}, {}, urlencode({"NotifyData": "<P><Data>PGE+PC9hPg==</Data><Signature>x</Signature>"
                                                             "<KeyFields>a[@b]</KeyFields></P>"}).encode()),
], ids=["other-key", "state-not-covered", "nothing-covered", "dtd", "not-xml", "bad-base64", "xpath-injection"])
def test_forged_or_unverifiable_notifications_are_refused(connector, request_):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(request_)
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_duplicates_share_the_notification_id(connector):
    assert connector.parse_callback(notify()).notification_id == connector.parse_callback(notify()).notification_id


def test_wrong_amount_and_unknown_order_parse_for_the_core(connector):
    assert connector.parse_callback(notify(OrderCashAmount="149000")).amount == 149_000
    assert connector.parse_callback(notify(OrderNo="UNKNOWN")).reference == "UNKNOWN"


def test_a_notification_for_another_shop_is_refused(connector):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(notify(ShopID="999"))
    assert failure.value.kind is ConnectorErrorKind.PROTOCOL


def test_states(connector):
    assert connector.parse_callback(notify(State="PAYMENT_CANCELLED")).status is ConnectorStatus.CANCELLED
    with pytest.raises(ConnectorError):
        connector.parse_callback(notify(State="SOMETHING_NEW"))


@pytest.mark.parametrize(("outcome", "status"), [
    (CallbackOutcome.ACCEPTED, 200), (CallbackOutcome.DUPLICATE, 200), (CallbackOutcome.UNKNOWN_REFERENCE, 400),
    (CallbackOutcome.AMOUNT_MISMATCH, 400), (CallbackOutcome.BAD_SIGNATURE, 400), (CallbackOutcome.ERROR, 500),
])
def test_replies(connector, outcome, status):
    reply = connector.reply(outcome)
    assert reply.status_code == status
    assert (reply.body == b"NOTIFY_RECEIVED") == (status == 200)


def test_create_sends_the_order_xml_with_its_checksum(connector, transport):
    transport.handler = lambda request: (200, {}, json.dumps({"result": "success", "order": {
        "order_no": "DVC7K2M9QX4TB1HZ", "payment_url": "https://payoo.test/pay/1"}}).encode())
    result = connector.create(order())
    form = parse_qs(transport.last.body.decode() if isinstance(transport.last.body, bytes) else "")
    xml = form["data"][0]
    assert form["checksum"][0] == sha512(KEY + xml)
    assert "<order_no>DVC7K2M9QX4TB1HZ</order_no>" in xml and "<order_cash_amount>150000</order_cash_amount>" in xml
    assert unquote(xml).count("LE PHI") == 1
    assert result.redirect_url == "https://payoo.test/pay/1"


def envelope(data: dict[str, object], key: str = KEY) -> bytes:
    text = json.dumps(data)
    return json.dumps({"ResponseData": text, "SecureHash": sha512(key + text)}).encode()


def test_query_and_its_checksums(connector, transport):
    transport.handler = lambda request: (200, {}, envelope({"ResponseCode": 0, "OrderNo": "DVC7K2M9QX4TB1HZ",
                                                            "OrderStatus": 1, "OrderCash": 150000,
                                                            "PurchaseNo": "PO998877"}))
    result = connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW)
    sent = transport.last_json()
    assert sent["SecureHash"] == sha512(KEY + sent["RequestData"])
    assert transport.last.headers["APIUsername"] == "api"
    assert (result.status, result.amount) == (ConnectorStatus.SUCCEEDED, 150_000)
    transport.handler = lambda request: (200, {}, envelope({"ResponseCode": 0, "OrderNo": "DVC7K2M9QX4TB1HZ",
                                                            "OrderStatus": 1, "OrderCash": 1}, key="forged"))
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW)
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_query_unknown_order_and_refund(connector, transport):
    transport.handler = lambda request: (200, {}, envelope({"ResponseCode": 2}))
    assert connector.query_status("X", amount=1, created_at=NOW).status is ConnectorStatus.UNKNOWN
    transport.handler = lambda request: (200, {}, envelope({"ResponseCode": 0, "RefundNo": "RF1"}))
    assert connector.refund("DVC7K2M9QX4TB1HZ", "PO998877", 50_000, "r1").provider_reference == "RF1"
    assert json.loads(transport.last_json()["RequestData"])["Money"] == 50000
