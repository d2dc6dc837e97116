"""Ngân Lượng connector: the payer's return only triggers an authenticated pull; canned API answers."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs

import pytest
import requests
from connector_testkit import NOW, CannedTransport, clock, entry, order

from payment_service.adapters.connectors.nganluong import NganLuongConnector
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
)

PASSWORD = "TestSecurePass2026"


def detail(error_code: str = "00", status: str = "00", amount: str = "150000", order_code: str = "DVC7K2M9QX4TB1HZ",
           token: str = "tok-1") -> bytes:
    return (f"<?xml version=\"1.0\"?><result><error_code>{error_code}</error_code><token>{token}</token>"
            f"<transaction_status>{status}</transaction_status><order_code>{order_code}</order_code>"
            f"<total_amount>{amount}</total_amount><transaction_id>NL123456</transaction_id></result>").encode()


def form_of(transport: CannedTransport) -> dict[str, str]:
    body = transport.last.body
    return {k: v[0] for k, v in parse_qs(body.decode() if isinstance(body, bytes) else "").items()}


@pytest.fixture
def connector(session: requests.Session) -> NganLuongConnector:
    return NganLuongConnector("nganluong", entry("nganluong", base_url="https://nganluong.test", merchant_id="36680",
                                                 merchant_password=PASSWORD, receiver_email="a@dvc.test",
                                                 timeout_seconds=2), clock=clock, session=session)


def test_it_is_pull_only(connector):
    assert connector.info.push_notifications is False
    assert connector.info.supports_refund is False


def test_the_return_triggers_a_pull_with_the_md5_password(connector, transport):
    transport.handler = lambda request: (200, {}, detail())
    notification = connector.parse_callback(CallbackRequest("GET", {"token": "tok-1",
                                                                    "order_code": "IGNORED-FROM-BROWSER"}, {}, b""))
    sent = form_of(transport)
    assert sent["function"] == "GetTransactionDetail" and sent["token"] == "tok-1"
    assert sent["merchant_password"] == hashlib.md5(PASSWORD.encode()).hexdigest()
    # Everything comes from the pull, never from the browser's query string.
    assert (notification.reference, notification.amount, notification.status) == (
        "DVC7K2M9QX4TB1HZ", 150_000, ConnectorStatus.SUCCEEDED)


@pytest.mark.parametrize("query", [{}, {"token": ""}, {"token": "x" * 500}])
def test_a_return_without_a_usable_token_is_refused_without_calling(connector, transport, query):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(CallbackRequest("GET", query, {}, b""))
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE
    assert transport.requests == []


def test_a_token_nganluong_does_not_confirm_is_a_bad_signature(connector, transport):
    transport.handler = lambda request: (200, {}, detail(error_code="81"))
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(CallbackRequest("GET", {"token": "forged"}, {}, b""))
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_duplicate_returns_share_the_notification_id_and_unpaid_is_pending(connector, transport):
    transport.handler = lambda request: (200, {}, detail())
    first = connector.parse_callback(CallbackRequest("GET", {"token": "tok-1"}, {}, b""))
    assert connector.parse_callback(CallbackRequest("GET", {"token": "tok-1"}, {}, b"")).notification_id == \
        first.notification_id
    transport.handler = lambda request: (200, {}, detail(status="02"))
    assert connector.parse_callback(CallbackRequest("GET", {"token": "tok-1"}, {}, b"")).status is \
        ConnectorStatus.PENDING


def test_a_pull_that_times_out_is_a_timeout(connector, transport):
    def hang(request):
        raise requests.ConnectTimeout("connect timed out")

    transport.handler = hang
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(CallbackRequest("GET", {"token": "tok-1"}, {}, b""))
    assert failure.value.kind is ConnectorErrorKind.TIMEOUT


def test_create_returns_the_token_and_query_uses_it(connector, transport):
    transport.handler = lambda request: (200, {}, b"<result><error_code>00</error_code><token>tok-9</token>"
                                                  b"<checkout_url>https://nl.test/checkout/9</checkout_url></result>")
    result = connector.create(order())
    assert form_of(transport)["total_amount"] == "150000"
    assert (result.provider_reference, result.redirect_url) == ("tok-9", "https://nl.test/checkout/9")
    transport.handler = lambda request: (200, {}, detail(token="tok-9"))
    assert connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW,
                                  provider_reference="tok-9").status is ConnectorStatus.SUCCEEDED
    # Without the token the one remembered from this process's create is used.
    assert connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW).status is \
        ConnectorStatus.SUCCEEDED
    assert form_of(transport)["token"] == "tok-9"


def test_a_query_without_any_token_is_refused(connector):
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVCNEVERCREATED", amount=1, created_at=NOW)
    assert failure.value.kind is ConnectorErrorKind.REJECTED


@pytest.mark.parametrize(("outcome", "status"), [(CallbackOutcome.ACCEPTED, 200), (CallbackOutcome.ERROR, 503),
                                                 (CallbackOutcome.BAD_SIGNATURE, 400),
                                                 (CallbackOutcome.UNKNOWN_REFERENCE, 404)])
def test_the_reply_is_a_page_for_the_payer(connector, outcome, status):
    reply = connector.reply(outcome)
    assert reply.status_code == status and reply.content_type.startswith("text/html")
    assert b"<p>" in reply.body
