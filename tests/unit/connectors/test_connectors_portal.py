"""Portal connection standard (DVC-PORTAL-1): bank messages signed here with Ed25519 by the spec's base strings."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
import requests
from connector_testkit import NOW, CannedTransport, clock, entry, order
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from payment_service.adapters.connectors.portal_standard import PortalStandardConnector
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
    NotificationKind,
)

BANK_KEY = Ed25519PrivateKey.generate()
PLATFORM_KEY = Ed25519PrivateKey.generate()
BANK_KID = "vcb-bank-2026"
PLATFORM_KID = "dvc-platform-vcb-2026"
NOTIFY_PATH = "/callbacks/vietcombank"


def pem(key: Any, private: bool) -> str:
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def base(second_line: str, third_line: str, timestamp: str, nonce: str, kid: str, body: bytes) -> bytes:
    """The spec: scheme, method (or 'RESPONSE <status>'), target (or the request nonce), timestamp, nonce, key id,
    lowercase hex SHA-256 of the body; joined by LF."""
    return "\n".join(["DVC-PORTAL-1", second_line, third_line, timestamp, nonce, kid,
                      hashlib.sha256(body).hexdigest()]).encode()


def bank_headers(method: str, target: str, body: bytes, *, at: float | None = None, nonce: str = "n0nce-0123456789AB",
                 key: Ed25519PrivateKey = BANK_KEY, kid: str = BANK_KID) -> dict[str, str]:
    timestamp = str(int(NOW.timestamp() if at is None else at))
    signature = key.sign(base(method, target, timestamp, nonce, kid, body))
    return {"x-dvc-key-id": kid, "x-dvc-timestamp": timestamp, "x-dvc-nonce": nonce,
            "x-dvc-signature": base64.b64encode(signature).decode()}


def notice(**changes: Any) -> bytes:
    payload = {"notification_id": "vcb-n-1", "type": "PAYMENT_RESULT", "reference": "DVC7K2M9QX4TB1HZ",
               "bank_transaction_id": "FT2611220001", "status": "SUCCEEDED", "amount": 150000,
               "occurred_at": "2026-11-22T02:59:00Z"}
    payload.update(changes)
    return json.dumps(payload).encode()


def callback(body: bytes, headers: dict[str, str]) -> CallbackRequest:
    return CallbackRequest("POST", {}, headers, body)


@pytest.fixture
def connector(session: requests.Session) -> PortalStandardConnector:
    return PortalStandardConnector("vietcombank", entry(
        "vietcombank", base_url="https://api.vcb.test/dvc", merchant_id="DVCQG", display_name="Vietcombank",
        platform_key_id=PLATFORM_KID, platform_private_key=pem(PLATFORM_KEY, True), bank_key_id=BANK_KID,
        bank_public_key=pem(BANK_KEY, False), timeout_seconds=2), clock=clock, session=session)


def test_a_signed_notification_is_parsed(connector):
    body = notice()
    notification = connector.parse_callback(callback(body, bank_headers("POST", NOTIFY_PATH, body)))
    assert (notification.reference, notification.amount, notification.status, notification.notification_id) == (
        "DVC7K2M9QX4TB1HZ", 150_000, ConnectorStatus.SUCCEEDED, "vcb-n-1")
    assert notification.kind is NotificationKind.PAYMENT_RESULT


@pytest.mark.parametrize(("make", "code"), [
    (lambda b: bank_headers("POST", NOTIFY_PATH, b, key=Ed25519PrivateKey.generate()), "BAD_SIGNATURE"),
    (lambda b: bank_headers("POST", NOTIFY_PATH, notice(amount=1)), "BAD_SIGNATURE"),          # other body
    (lambda b: bank_headers("POST", "/callbacks/bidv", b), "BAD_SIGNATURE"),                   # other target
    (lambda b: bank_headers("POST", NOTIFY_PATH, b, at=NOW.timestamp() - 301), "STALE_TIMESTAMP"),
    (lambda b: bank_headers("POST", NOTIFY_PATH, b, at=NOW.timestamp() + 301), "STALE_TIMESTAMP"),
    (lambda b: bank_headers("POST", NOTIFY_PATH, b, kid="someone-else"), "UNKNOWN_KEY"),
    (lambda b: {k: v for k, v in bank_headers("POST", NOTIFY_PATH, b).items() if k != "x-dvc-nonce"}, "BAD_SIGNATURE"),
    (lambda b: {**bank_headers("POST", NOTIFY_PATH, b), "x-dvc-signature": "%%%"}, "BAD_SIGNATURE"),
    (lambda b: bank_headers("POST", NOTIFY_PATH, b, nonce="short"), "BAD_SIGNATURE"),
], ids=["other-key", "tampered-body", "other-target", "too-old", "too-new", "unknown-kid", "no-nonce",
        "not-base64", "short-nonce"])
def test_unverifiable_notifications_are_refused(connector, make, code):
    body = notice()
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(callback(body, make(body)))
    assert (failure.value.kind, failure.value.provider_code) == (ConnectorErrorKind.BAD_SIGNATURE, code)


def test_a_replayed_nonce_is_refused_but_a_bank_retry_with_a_fresh_nonce_is_a_duplicate(connector):
    body = notice()
    headers = bank_headers("POST", NOTIFY_PATH, body)
    first = connector.parse_callback(callback(body, headers))
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(callback(body, headers))
    assert failure.value.provider_code == "REPLAYED_NONCE"
    retry = connector.parse_callback(callback(body, bank_headers("POST", NOTIFY_PATH, body,
                                                                 nonce="fresh-nonce-2345678")))
    assert retry.notification_id == first.notification_id


def test_a_forged_message_cannot_burn_the_nonce_of_a_genuine_one(connector):
    body = notice()
    forged = bank_headers("POST", NOTIFY_PATH, body, key=Ed25519PrivateKey.generate(), nonce="shared-nonce-ABCDEF")
    with pytest.raises(ConnectorError):
        connector.parse_callback(callback(body, forged))
    genuine = bank_headers("POST", NOTIFY_PATH, body, nonce="shared-nonce-ABCDEF")
    assert connector.parse_callback(callback(body, genuine)).status is ConnectorStatus.SUCCEEDED


def test_wrong_amount_unknown_reference_and_refund_results_parse(connector):
    for index, (body, check) in enumerate([
        (notice(amount=149000), lambda n: n.amount == 149_000),
        (notice(reference="DVCUNKNOWN"), lambda n: n.reference == "DVCUNKNOWN"),
        (notice(type="REFUND_RESULT", bank_refund_id="RF1", refund_id="a1b2"),
         lambda n: n.kind is NotificationKind.REFUND_RESULT and (n.provider_reference, n.refund_id) == ("RF1", "a1b2")),
    ]):
        assert check(connector.parse_callback(callback(body, bank_headers("POST", NOTIFY_PATH, body,
                                                                          nonce=f"nonce-number-{index:06d}"))))


@pytest.mark.parametrize(("outcome", "status", "code"), [
    (CallbackOutcome.ACCEPTED, 200, "OK"), (CallbackOutcome.DUPLICATE, 200, "DUPLICATE"),
    (CallbackOutcome.UNKNOWN_REFERENCE, 404, "UNKNOWN_REFERENCE"),
    (CallbackOutcome.AMOUNT_MISMATCH, 422, "AMOUNT_MISMATCH"), (CallbackOutcome.BAD_SIGNATURE, 401, "BAD_SIGNATURE"),
    (CallbackOutcome.REJECTED, 400, "REJECTED"), (CallbackOutcome.ERROR, 503, "RETRY_LATER"),
])
def test_replies(connector, outcome, status, code):
    reply = connector.reply(outcome)
    assert (reply.status_code, json.loads(reply.body)["code"]) == (status, code)


def bank_answer(payload: Any, status: int = 200, *, bind_to: str | None = None, sign: bool = True,
                content: bytes | None = None):
    """A handler answering like the bank: signed over the body and the request's nonce."""
    def handler(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = content if content is not None else json.dumps(payload).encode()
        if not sign:
            return status, {}, body
        nonce = "bank-answer-nonce-01"
        timestamp = str(int(NOW.timestamp()))
        request_nonce = bind_to if bind_to is not None else str(request.headers["X-DVC-Nonce"])
        signature = BANK_KEY.sign(base(f"RESPONSE {status}", request_nonce, timestamp, nonce, BANK_KID, body))
        return status, {"X-DVC-Key-Id": BANK_KID, "X-DVC-Timestamp": timestamp, "X-DVC-Nonce": nonce,
                        "X-DVC-Signature": base64.b64encode(signature).decode()}, body
    return handler


def verify_platform_request(request: requests.PreparedRequest) -> None:
    body = request.body if isinstance(request.body, bytes) else b""
    target = request.path_url
    headers = request.headers
    PLATFORM_KEY.public_key().verify(
        base64.b64decode(headers["X-DVC-Signature"]),
        base(str(request.method), target, headers["X-DVC-Timestamp"], headers["X-DVC-Nonce"], headers["X-DVC-Key-Id"],
             body))


def test_create_is_signed_by_the_platform_and_the_answer_verified(connector, transport: CannedTransport):
    transport.handler = bank_answer({"reference": "DVC7K2M9QX4TB1HZ", "bank_transaction_id": "FT1",
                                     "status": "PENDING", "payment_url": "https://vcb.test/pay/1"}, 201)
    result = connector.create(order())
    verify_platform_request(transport.last)
    assert transport.last.path_url == "/dvc/v1/payments"
    assert transport.last.headers["X-DVC-Key-Id"] == PLATFORM_KID
    sent = transport.last_json()
    assert sent["amount"] == 150000 and sent["beneficiary"] == {"bin": "970436", "account": "0011001234567"}
    assert (result.status, result.provider_reference, result.redirect_url) == (
        ConnectorStatus.PENDING, "FT1", "https://vcb.test/pay/1")


def test_a_tampered_request_would_not_verify_at_the_bank(connector, transport: CannedTransport):
    transport.handler = bank_answer({"reference": "DVC7K2M9QX4TB1HZ", "status": "PENDING"}, 201)
    connector.create(order())
    transport.last.body = (transport.last.body or b"").replace(b"150000", b"1")  # type: ignore[union-attr]
    with pytest.raises(InvalidSignature):
        verify_platform_request(transport.last)


@pytest.mark.parametrize(("handler", "kind"), [
    (bank_answer({"reference": "DVC7K2M9QX4TB1HZ", "status": "PENDING"}, 201, bind_to="another-request-nonce"),
     ConnectorErrorKind.BAD_SIGNATURE),
    (bank_answer({"reference": "DVC7K2M9QX4TB1HZ", "status": "PENDING"}, 201, sign=False),
     ConnectorErrorKind.BAD_SIGNATURE),
    (bank_answer({"error": {"code": "DUPLICATE_REFERENCE", "message": "x"}}, 409), ConnectorErrorKind.REJECTED),
    (bank_answer({"error": {"code": "UNKNOWN_KEY", "message": "x"}}, 401), ConnectorErrorKind.CONFIGURATION),
    (bank_answer({"error": {"code": "UNAVAILABLE"}}, 503, sign=False), ConnectorErrorKind.UNAVAILABLE),
], ids=["replayed-answer", "unsigned-answer", "duplicate-reference", "unknown-key", "outage"])
def test_create_failures(connector, transport, handler, kind):
    transport.handler = handler
    with pytest.raises(ConnectorError) as failure:
        connector.create(order())
    assert failure.value.kind is kind


def test_status_query(connector, transport):
    transport.handler = bank_answer({"reference": "DVC7K2M9QX4TB1HZ", "bank_transaction_id": "FT1",
                                     "status": "SUCCEEDED", "amount": 150000, "paid_at": "2026-11-22T02:59:00Z"})
    result = connector.query_status("DVC7K2M9QX4TB1HZ", amount=150_000, created_at=NOW)
    assert transport.last.path_url == "/dvc/v1/payments/DVC7K2M9QX4TB1HZ" and transport.last.method == "GET"
    verify_platform_request(transport.last)
    assert (result.status, result.amount) == (ConnectorStatus.SUCCEEDED, 150_000)
    transport.handler = bank_answer({"error": {"code": "NOT_FOUND", "message": "x"}}, 404)
    assert connector.query_status("X", amount=1, created_at=NOW).status is ConnectorStatus.UNKNOWN


def test_refund_accepted_and_refused(connector, transport):
    transport.handler = bank_answer({"refund_id": "r1", "status": "ACCEPTED", "bank_refund_id": "RF9"})
    assert connector.refund("DVC7K2M9QX4TB1HZ", "FT1", 50_000, "r1").provider_reference == "RF9"
    assert transport.last_json() == {"refund_id": "r1", "reference": "DVC7K2M9QX4TB1HZ", "bank_transaction_id": "FT1",
                                     "amount": 50000}
    transport.handler = bank_answer({"error": {"code": "AMOUNT_EXCEEDS_PAYMENT", "message": "x"}}, 422)
    refused = connector.refund("DVC7K2M9QX4TB1HZ", "FT1", 999_999, "r2")
    assert (refused.accepted, refused.provider_code) == (False, "AMOUNT_EXCEEDS_PAYMENT")


def signed_file(rows: str, key: Ed25519PrivateKey = BANK_KEY) -> bytes:
    content = ("reference,bank_transaction_id,amount,status,settled_on\n" + rows).encode()
    base_string = "\n".join(["DVC-PORTAL-1", "FILE", BANK_KID, hashlib.sha256(content).hexdigest()]).encode()
    signature = base64.b64encode(key.sign(base_string)).decode()
    return content + f"#DVC-SIGNATURE key-id={BANK_KID} signature={signature}\n".encode()


def test_settlement_files_are_verified_whether_fetched_or_uploaded(connector, transport):
    rows = "DVC7K2M9QX4TB1HZ,FT1,150000,SUCCEEDED,2026-11-22\nDVCAAAAAAAAAAAAA,FT2,90000,SUCCEEDED,2026-11-22\n"
    transport.handler = bank_answer(None, content=signed_file(rows))
    lines = connector.fetch_settlement(NOW.date())
    assert transport.last.path_url == "/dvc/v1/settlements/2026-11-22"
    assert [(line.reference, line.amount) for line in lines] == [("DVC7K2M9QX4TB1HZ", 150_000),
                                                                 ("DVCAAAAAAAAAAAAA", 90_000)]
    assert len(connector.parse_settlement(signed_file(rows))) == 2
    for bad in (signed_file(rows).replace(b"90000", b"99000"), signed_file(rows, Ed25519PrivateKey.generate()),
                signed_file(rows).split(b"#DVC")[0]):
        with pytest.raises(ConnectorError) as failure:
            connector.parse_settlement(bad)
        assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def test_a_malformed_key_names_itself(session):
    connector = PortalStandardConnector("bidv", entry("bidv", base_url="https://bidv.test", merchant_id="DVCQG",
                                                      platform_key_id="p", platform_private_key=pem(PLATFORM_KEY, True),
                                                      bank_key_id="b", bank_public_key="-----BEGIN nonsense"),
                                        session=session)
    with pytest.raises(ConnectorError) as failure:
        connector.check_credentials()
    assert failure.value.kind is ConnectorErrorKind.CONFIGURATION and "bank_public_key" in str(failure.value)
