"""VNPay connector against canned VNPay messages signed here, independently, by VNPay's published rules."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl, quote_plus, urlsplit

import pytest
import requests
from connector_testkit import NOW, CannedTransport, clock, entry, order

from payment_service.adapters.connectors.vnpay import VnpayConnector
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
)

SECRET = "TESTVNPAYSECRET0123456789ABCDEFG"
TMN = "DVCTEST1"


def sign_query(params: dict[str, str], secret: str = SECRET) -> str:
    """VNPay: HMAC-SHA512 hex over vnp_* sorted by name, form-encoded, without the hash fields."""
    data = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in sorted(params.items()))
    return hmac.new(secret.encode(), data.encode(), hashlib.sha512).hexdigest()


def sign_pipe(values: list[str]) -> str:
    return hmac.new(SECRET.encode(), "|".join(values).encode(), hashlib.sha512).hexdigest()


def ipn(**changes: str) -> dict[str, str]:
    params = {"vnp_Amount": "15000000", "vnp_BankCode": "NCB", "vnp_BankTranNo": "VNP14226112",
              "vnp_CardType": "ATM", "vnp_OrderInfo": "DVC7K2M9QX4TB1HZ LE PHI", "vnp_PayDate": "20261122101500",
              "vnp_ResponseCode": "00", "vnp_TmnCode": TMN, "vnp_TransactionNo": "14226112",
              "vnp_TransactionStatus": "00", "vnp_TxnRef": "DVC7K2M9QX4TB1HZ"}
    params.update(changes)
    return params


def signed(params: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    return {**params, "vnp_SecureHashType": "HmacSHA512", "vnp_SecureHash": sign_query(params, secret)}


def callback(query: dict[str, str]) -> CallbackRequest:
    return CallbackRequest("GET", query, {}, b"")


@pytest.fixture
def connector(session: requests.Session) -> VnpayConnector:
    return VnpayConnector("vnpay", entry("vnpay", base_url="https://sandbox.vnpay.test", tmn_code=TMN,
                                         hash_secret=SECRET, timeout_seconds=2), clock=clock, session=session)


def test_a_valid_ipn_is_parsed_with_the_amount_in_dong(connector):
    notification = connector.parse_callback(callback(signed(ipn())))
    assert notification.reference == "DVC7K2M9QX4TB1HZ"
    assert notification.amount == 150_000  # vnp_Amount is đồng × 100
    assert notification.status is ConnectorStatus.SUCCEEDED
    assert notification.provider_reference == "14226112"
    assert notification.occurred_at is not None and notification.occurred_at.hour == 10


def test_an_uppercase_signature_is_accepted(connector):
    query = signed(ipn())
    query["vnp_SecureHash"] = query["vnp_SecureHash"].upper()
    assert connector.parse_callback(callback(query)).status is ConnectorStatus.SUCCEEDED


@pytest.mark.parametrize("forge", [
    lambda q: {**q, "vnp_SecureHash": sign_query(ipn(), "another-merchant-secret-key-000000")},
    lambda q: {**q, "vnp_Amount": "100"},                       # tampered after signing
    lambda q: {k: v for k, v in q.items() if k != "vnp_SecureHash"},
    lambda q: {**q, "vnp_SecureHash": ""},
    lambda q: {**q, "vnp_ResponseCode": "24"},
], ids=["other-key", "tampered-amount", "no-hash", "empty-hash", "tampered-status"])
def test_a_forged_ipn_is_refused_before_parsing(connector, forge):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(callback(forge(signed(ipn()))))
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_a_duplicate_ipn_carries_the_same_notification_id(connector):
    first = connector.parse_callback(callback(signed(ipn())))
    again = connector.parse_callback(callback(signed(ipn())))
    other_attempt = connector.parse_callback(callback(signed(ipn(vnp_TransactionNo="14226999"))))
    assert first.notification_id == again.notification_id
    assert other_attempt.notification_id != first.notification_id


def test_an_amount_that_is_not_whole_dong_is_a_protocol_error(connector):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(callback(signed(ipn(vnp_Amount="15000050"))))
    assert failure.value.kind is ConnectorErrorKind.PROTOCOL


def test_the_paid_amount_is_reported_as_paid_so_the_core_can_refuse_a_mismatch(connector):
    assert connector.parse_callback(callback(signed(ipn(vnp_Amount="14900000")))).amount == 149_000


def test_an_unknown_reference_still_parses_so_the_core_can_answer_order_not_found(connector):
    assert connector.parse_callback(callback(signed(ipn(vnp_TxnRef="NOSUCHORDER")))).reference == "NOSUCHORDER"


@pytest.mark.parametrize(("code", "status"), [("24", ConnectorStatus.CANCELLED), ("51", ConnectorStatus.FAILED),
                                              ("11", ConnectorStatus.CANCELLED)])
def test_provider_codes_map_to_statuses(connector, code, status):
    notification = connector.parse_callback(callback(signed(ipn(vnp_ResponseCode=code, vnp_TransactionStatus="02"))))
    assert notification.status is status
    assert notification.raw_code == code


@pytest.mark.parametrize(("outcome", "code"), [
    (CallbackOutcome.ACCEPTED, "00"), (CallbackOutcome.UNKNOWN_REFERENCE, "01"), (CallbackOutcome.DUPLICATE, "02"),
    (CallbackOutcome.AMOUNT_MISMATCH, "04"), (CallbackOutcome.BAD_SIGNATURE, "97"), (CallbackOutcome.ERROR, "99"),
    (CallbackOutcome.REJECTED, "99"),
])
def test_replies_use_vnpay_rspcodes(connector, outcome, code):
    reply = connector.reply(outcome)
    assert reply.status_code == 200
    assert json.loads(reply.body)["RspCode"] == code


def test_create_returns_a_payment_url_signed_by_the_rules(connector):
    result = connector.create(order())
    assert result.status is ConnectorStatus.PENDING
    url = urlsplit(result.redirect_url)
    assert url.path == "/paymentv2/vpcpay.html"
    params = dict(parse_qsl(url.query))
    received = params.pop("vnp_SecureHash")
    assert hmac.compare_digest(received, sign_query(params))
    assert params["vnp_Amount"] == "15000000"
    assert params["vnp_TxnRef"] == "DVC7K2M9QX4TB1HZ"
    assert params["vnp_CreateDate"] == "20261122100000"  # 03:00 UTC is 10:00 in Viet Nam
    assert params["vnp_ReturnUrl"] == "https://dvc.test/pay/return"


QUERY_ANSWER_ORDER = ["vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode",
                      "vnp_TxnRef", "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo",
                      "vnp_TransactionType", "vnp_TransactionStatus", "vnp_OrderInfo", "vnp_PromotionCode",
                      "vnp_PromotionAmount"]


def query_answer(**changes: str) -> dict[str, str]:
    answer = {"vnp_ResponseId": "r1", "vnp_Command": "querydr", "vnp_ResponseCode": "00", "vnp_Message": "ok",
              "vnp_TmnCode": TMN, "vnp_TxnRef": "DVC7K2M9QX4TB1HZ", "vnp_Amount": "15000000", "vnp_BankCode": "NCB",
              "vnp_PayDate": "20261122101500", "vnp_TransactionNo": "14226112", "vnp_TransactionType": "01",
              "vnp_TransactionStatus": "00", "vnp_OrderInfo": "x", "vnp_PromotionCode": "", "vnp_PromotionAmount": ""}
    answer.update(changes)
    answer["vnp_SecureHash"] = sign_pipe([answer[name] for name in QUERY_ANSWER_ORDER])
    return answer


def answering(payload: dict[str, str], status: int = 200):
    return lambda request: (status, {"Content-Type": "application/json"}, json.dumps(payload).encode())


def test_querydr_is_signed_over_the_documented_field_order_and_its_answer_verified(connector, transport):
    transport.handler = answering(query_answer())
    result = connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW)
    sent = transport.last_json()
    order_of_fields = ["vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TxnRef",
                       "vnp_TransactionDate", "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo"]
    assert sent["vnp_SecureHash"] == sign_pipe([sent[name] for name in order_of_fields])
    assert sent["vnp_TransactionDate"] == "20261122100000"
    assert result.status is ConnectorStatus.SUCCEEDED
    assert result.amount == 150_000
    assert result.provider_reference == "14226112"


@pytest.mark.parametrize(("transaction_status", "status"), [("01", ConnectorStatus.PENDING),
                                                            ("02", ConnectorStatus.FAILED)])
def test_querydr_transaction_statuses(connector, transport, transaction_status, status):
    transport.handler = answering(query_answer(vnp_TransactionStatus=transaction_status))
    assert connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW).status is status


def test_querydr_not_found_is_unknown(connector, transport):
    transport.handler = answering(query_answer(vnp_ResponseCode="91"))
    assert connector.query_status("DVC7K2M9QX4TB1HZ", amount=1, created_at=NOW).status is ConnectorStatus.UNKNOWN


def test_a_querydr_answer_with_a_bad_hash_is_refused(connector, transport):
    forged = query_answer()
    forged["vnp_TransactionStatus"] = "00"
    forged["vnp_Amount"] = "100"
    transport.handler = answering(forged)
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVC7K2M9QX4TB1HZ", amount=1, created_at=NOW)
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_an_answer_about_another_order_is_refused(connector, transport):
    transport.handler = answering(query_answer(vnp_TxnRef="DVCOTHER"))
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVC7K2M9QX4TB1HZ", amount=1, created_at=NOW)
    assert failure.value.kind is ConnectorErrorKind.PROTOCOL


@pytest.mark.parametrize(("handler", "kind"), [
    (lambda request: (503, {}, b"maintenance"), ConnectorErrorKind.UNAVAILABLE),
    (lambda request: (200, {}, b"<html>not json</html>"), ConnectorErrorKind.PROTOCOL),
])
def test_outages_and_garbage_map_to_error_kinds(connector, transport, handler, kind):
    transport.handler = handler
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVC7K2M9QX4TB1HZ", amount=1, created_at=NOW)
    assert failure.value.kind is kind


def test_a_transport_timeout_is_a_timeout(connector, transport: CannedTransport):
    def hang(request):
        raise requests.ReadTimeout("read timed out")

    transport.handler = hang
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVC7K2M9QX4TB1HZ", amount=1, created_at=NOW)
    assert failure.value.kind is ConnectorErrorKind.TIMEOUT


def test_refund_sends_the_amount_times_100_and_reads_the_answer(connector, transport):
    order_of_fields = ["vnp_ResponseId", "vnp_Command", "vnp_ResponseCode", "vnp_Message", "vnp_TmnCode",
                       "vnp_TxnRef", "vnp_Amount", "vnp_BankCode", "vnp_PayDate", "vnp_TransactionNo",
                       "vnp_TransactionType", "vnp_TransactionStatus", "vnp_OrderInfo"]
    answer = {"vnp_ResponseId": "r2", "vnp_Command": "refund", "vnp_ResponseCode": "00", "vnp_Message": "ok",
              "vnp_TmnCode": TMN, "vnp_TxnRef": "DVC7K2M9QX4TB1HZ", "vnp_Amount": "5000000", "vnp_BankCode": "NCB",
              "vnp_PayDate": "", "vnp_TransactionNo": "99001", "vnp_TransactionType": "03",
              "vnp_TransactionStatus": "05", "vnp_OrderInfo": ""}
    answer["vnp_SecureHash"] = sign_pipe([answer[name] for name in order_of_fields])
    transport.handler = answering(answer)
    result = connector.refund("DVC7K2M9QX4TB1HZ", "14226112", 50_000, "refund-1")
    sent = transport.last_json()
    request_order = ["vnp_RequestId", "vnp_Version", "vnp_Command", "vnp_TmnCode", "vnp_TransactionType",
                     "vnp_TxnRef", "vnp_Amount", "vnp_TransactionNo", "vnp_TransactionDate", "vnp_CreateBy",
                     "vnp_CreateDate", "vnp_IpAddr", "vnp_OrderInfo"]
    assert sent["vnp_SecureHash"] == sign_pipe([sent[name] for name in request_order])
    assert sent["vnp_Amount"] == "5000000"
    assert sent["vnp_TransactionNo"] == "14226112"
    assert result.accepted and result.provider_reference == "99001"


def test_the_settlement_file_is_verified_and_parsed(connector, transport):
    content = (b"vnp_TxnRef,vnp_TransactionNo,vnp_Amount,vnp_TransactionStatus,vnp_SettleDate\n"
               b"DVC7K2M9QX4TB1HZ,14226112,15000000,00,20261122\n")
    signature = hmac.new(SECRET.encode(), content, hashlib.sha512).hexdigest()
    transport.handler = lambda request: (200, {"X-VNPAY-SecureHash": signature}, content)
    [line] = connector.fetch_settlement(NOW.date())
    assert (line.reference, line.amount, line.status) == ("DVC7K2M9QX4TB1HZ", 150_000, ConnectorStatus.SUCCEEDED)
    transport.handler = lambda request: (200, {"X-VNPAY-SecureHash": signature}, content.replace(b"150", b"990"))
    with pytest.raises(ConnectorError) as failure:
        connector.fetch_settlement(NOW.date())
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_a_short_hash_secret_stops_start_up(session):
    connector = VnpayConnector("vnpay", entry("vnpay", base_url="https://x.test", tmn_code=TMN, hash_secret="short"),
                               session=session)
    with pytest.raises(ConnectorError) as failure:
        connector.check_credentials()
    assert failure.value.kind is ConnectorErrorKind.CONFIGURATION
    assert "hash_secret" in str(failure.value)
