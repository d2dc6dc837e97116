"""VietQR transfers: the reference recovered from what banks do to transfer notes, and signed credit notices."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests
from connector_testkit import NOW, clock, entry
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from payment_service.adapters.connectors.vietqr_transfer import VietQrTransferConnector, extract_reference
from payment_service.domain import reference as references
from payment_service.domain.connector import (
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorStatus,
    Credit,
    NotificationKind,
)

REF = "DVC7K2M9QX4TB1H" + references.check_character("DVC7K2M9QX4TB1H")
OTHER = "DVC0000000000AB" + references.check_character("DVC0000000000AB")
BANK_KEY = Ed25519PrivateKey.generate()
PLATFORM_KEY = Ed25519PrivateKey.generate()


def spaced(text: str, size: int = 4) -> str:
    return " ".join(text[i:i + size] for i in range(0, len(text), size))


def typo(text: str) -> str:
    """One character changed to another of the alphabet (the check character must catch it)."""
    position = 8
    replacement = "7" if text[position] != "7" else "8"
    return text[:position] + replacement + text[position + 1:]


@pytest.mark.parametrize("note", [
    f"{REF} thanh toan le phi",
    f"{REF.lower()} thanh toan le phi",
    f"MBVCB.3278612345.{REF}.CT tu 0011004567890 NGUYEN VAN A",
    f"IBFT {spaced(REF)} chuyen tien",
    f"{spaced(REF.lower(), 3)}",
    f"Thanh toán lệ phí hồ sơ {REF}",
    f"Đ{REF[1:]} nộp phí",                              # Đ folded to D
    f"{REF[:3]}-{REF[3:8]}.{REF[8:]}",
    REF.replace("0", "O").replace("1", "I"),           # Crockford look-alikes typed by a person
    "".join(chr(ord(c) + 0xFEE0) for c in REF),          # full-width characters from some keyboards
    f"{REF} {REF} trung lap",                            # the same reference twice is not ambiguous
])
def test_the_reference_survives_what_banks_and_payers_do_to_notes(note):
    assert extract_reference(note) == REF


@pytest.mark.parametrize("note", [
    "",
    "chuyen tien le phi",
    REF[:10],                                  # truncated inside the reference
    f"MBVCB.3278612345.{REF[:12]}",
    typo(REF),                                 # garbled: the check character fails
    f"{REF} {OTHER}",                          # two different references: ambiguous
    f"NGUYEN DUC ANH {REF[3:]}",               # 'DUC' is a name, not our prefix
])
def test_notes_without_a_trustworthy_reference_give_nothing(note):
    assert extract_reference(note) == ""


def pem(key: Ed25519PrivateKey, private: bool) -> str:
    if private:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode()
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture
def connector(session: requests.Session) -> VietQrTransferConnector:
    return VietQrTransferConnector("vietqr", entry(
        "vietqr", base_url="https://napas-bank.test", merchant_id="DVCQG", platform_key_id="dvc-1",
        platform_private_key=pem(PLATFORM_KEY, True), bank_key_id="bank-1", bank_public_key=pem(BANK_KEY, False)),
        clock=clock, session=session)


def credit_notice(note: str, amount: int = 150000, key: Ed25519PrivateKey = BANK_KEY,
                  nonce: str = "credit-nonce-000001") -> CallbackRequest:
    body = json.dumps({"notification_id": "n-FT1", "type": "ACCOUNT_CREDITED",
                       "account": {"bin": "970436", "number": "0011001234567"}, "amount": amount,
                       "transfer_note": note, "bank_transaction_id": "FT1",
                       "credited_at": "2026-11-22T02:58:00+00:00"}).encode()
    timestamp = str(int(NOW.timestamp()))
    base = "\n".join(["DVC-PORTAL-1", "POST", "/callbacks/vietqr", timestamp, nonce, "bank-1",
                      hashlib.sha256(body).hexdigest()]).encode()
    return CallbackRequest("POST", {}, {"x-dvc-key-id": "bank-1", "x-dvc-timestamp": timestamp, "x-dvc-nonce": nonce,
                                        "x-dvc-signature": base64.b64encode(key.sign(base)).decode()}, body)


def test_a_credit_notice_becomes_account_credited_with_the_recovered_reference(connector):
    notification = connector.parse_callback(credit_notice(f"MBVCB.1.{spaced(REF.lower())} le phi"))
    assert notification.kind is NotificationKind.ACCOUNT_CREDITED
    assert (notification.reference, notification.amount, notification.provider_reference) == (REF, 150_000, "FT1")
    assert notification.transfer_note.startswith("MBVCB.1.")
    assert notification.credited_account == "970436/0011001234567"   # checked against the payment's account


def test_a_credit_with_a_garbled_note_still_arrives_with_an_empty_reference(connector):
    notification = connector.parse_callback(credit_notice(typo(REF)))
    assert notification.reference == "" and notification.transfer_note == typo(REF)


def test_a_forged_credit_notice_is_refused(connector):
    with pytest.raises(ConnectorError) as failure:
        connector.parse_callback(credit_notice(REF, key=Ed25519PrivateKey.generate()))
    assert failure.value.kind is ConnectorErrorKind.BAD_SIGNATURE


def bank_answer(request: requests.PreparedRequest, payload: dict) -> tuple[int, dict[str, str], bytes]:
    """The collecting bank's signed 200 answer carrying ``payload``."""
    body = json.dumps(payload).encode()
    timestamp, nonce = str(int(NOW.timestamp())), "answer-nonce-00001"
    base = "\n".join(["DVC-PORTAL-1", "RESPONSE 200", str(request.headers["X-DVC-Nonce"]), timestamp, nonce,
                      "bank-1", hashlib.sha256(body).hexdigest()]).encode()
    return 200, {"X-DVC-Key-Id": "bank-1", "X-DVC-Timestamp": timestamp, "X-DVC-Nonce": nonce,
                 "X-DVC-Signature": base64.b64encode(BANK_KEY.sign(base)).decode()}, body


def test_a_credit_list_longer_than_the_pages_read_is_no_answer_not_unpaid(connector, transport):
    # The transfer sought may be on a page not read: saying PENDING would let expiry close a paid payment.
    transport.handler = lambda request: bank_answer(request, {"credits": [], "next_cursor": "more"})
    with pytest.raises(ConnectorError) as failure:
        connector.query_status(REF, amount=150_000, created_at=NOW)
    # No answer about this payment, but the bank is up: the circuit stays closed for every other payer.
    assert failure.value.kind is ConnectorErrorKind.REJECTED and not failure.value.counts_against_health


def test_status_adds_up_the_credits_carrying_the_reference(connector, transport):
    credits = [{"bank_transaction_id": "FT1", "amount": 100000, "transfer_note": f"{REF} dot 1",
                "credited_at": "2026-11-22T02:00:00+00:00"},
               {"bank_transaction_id": "FT2", "amount": 999000, "transfer_note": f"{OTHER} other payment",
                "credited_at": "2026-11-22T02:01:00+00:00"},
               {"bank_transaction_id": "FT3", "amount": 50000, "transfer_note": f"{spaced(REF)} dot 2",
                "credited_at": "2026-11-22T02:02:00+00:00"}]

    transport.handler = lambda request: bank_answer(request, {"credits": credits, "next_cursor": ""})
    partial = connector.query_status(REF, amount=200_000, created_at=NOW)
    assert (partial.status, partial.amount) == (ConnectorStatus.PENDING, 150_000)   # partial payments stay pending
    full = connector.query_status(REF, amount=150_000, created_at=NOW)
    assert (full.status, full.amount) == (ConnectorStatus.SUCCEEDED, 150_000)
    # Each transfer by its own id, so the platform recognises those a notice already brought.
    assert full.credits == (Credit("FT1", 100_000), Credit("FT3", 50_000)) and full.provider_reference == "FT3"
    nothing = connector.query_status("DVCNOTHINGHERE00", amount=1, created_at=NOW)
    assert (nothing.status, nothing.amount) == (ConnectorStatus.PENDING, None)
    assert "since=2026-11-22T03%3A00%3A00%2B00%3A00" in (transport.last.path_url or "")
