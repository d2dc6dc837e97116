"""Every connector logs its request/response transcripts only through its scrub: keys, signatures and account
numbers never reach a log line."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

import pytest
import requests
from connector_testkit import NOW, CannedTransport, clock, entry, order
from test_connectors_momo import ACCESS as MOMO_ACCESS
from test_connectors_momo import PARTNER as MOMO_PARTNER
from test_connectors_momo import SECRET as MOMO_SECRET
from test_connectors_momo import query_answer as momo_query_answer
from test_connectors_payoo import KEY as PAYOO_KEY
from test_connectors_payoo import SHOP as PAYOO_SHOP
from test_connectors_portal import BANK_KEY, BANK_KID, PLATFORM_KEY, bank_answer, pem
from test_connectors_vnpay import SECRET as VNPAY_SECRET
from test_connectors_vnpay import TMN, query_answer

from payment_service.adapters.connectors.momo import MomoConnector
from payment_service.adapters.connectors.nganluong import NganLuongConnector
from payment_service.adapters.connectors.payoo import PayooConnector
from payment_service.adapters.connectors.portal_standard import PortalStandardConnector
from payment_service.adapters.connectors.vietqr_transfer import VietQrTransferConnector
from payment_service.adapters.connectors.vnpay import VnpayConnector

ACCOUNT = "0011001234567"
CARD = "9704198526191432"
REFERENCE = "DVC7K2M9QX4TB1HZ"
NL_PASSWORD = "NganLuongSecret2026"


def signatures_in(request: requests.PreparedRequest) -> list[str]:
    """Every signature-like value the connector sent: long hex or base64 runs in headers and body."""
    text = json.dumps(dict(request.headers)) + (request.body.decode() if isinstance(request.body, bytes) else "")
    return [value for value in re.findall(r"[0-9a-f]{64,}|[A-Za-z0-9+/]{80,}={0,2}", text)]


def vnpay_case(session: requests.Session, transport: CannedTransport) -> tuple[Any, list[str]]:
    answer = query_answer()
    answer["vnp_CardNumber"] = CARD
    transport.handler = lambda request: (200, {}, json.dumps(answer).encode())
    connector = VnpayConnector("vnpay", entry("vnpay", base_url="https://v.test", tmn_code=TMN,
                                              hash_secret=VNPAY_SECRET), clock=clock, session=session)
    connector.query_status(REFERENCE, amount=150_000, created_at=NOW)
    return connector, [VNPAY_SECRET, answer["vnp_SecureHash"], CARD]


def momo_case(session: requests.Session, transport: CannedTransport) -> tuple[Any, list[str]]:
    body = json.loads(momo_query_answer(0))
    body["accountNumber"] = ACCOUNT
    transport.handler = lambda request: (200, {}, json.dumps(body).encode())
    connector = MomoConnector("momo", entry("momo", base_url="https://m.test", partner_code=MOMO_PARTNER,
                                            access_key=MOMO_ACCESS, secret_key=MOMO_SECRET), session=session)
    connector.query_status(REFERENCE, amount=150_000, created_at=NOW)
    return connector, [MOMO_SECRET, MOMO_ACCESS, body["signature"], ACCOUNT]


def payoo_case(session: requests.Session, transport: CannedTransport) -> tuple[Any, list[str]]:
    data = json.dumps({"ResponseCode": 0, "OrderNo": REFERENCE, "OrderStatus": 1, "OrderCash": 150000,
                       "BankAccount": ACCOUNT})
    secure_hash = hashlib.sha512((PAYOO_KEY + data).encode()).hexdigest()
    envelope = json.dumps({"ResponseData": data, "SecureHash": secure_hash}).encode()
    transport.handler = lambda request: (200, {}, envelope)
    connector = PayooConnector("payoo", entry("payoo", base_url="https://p.test", business_username="dvc",
                                              shop_id=PAYOO_SHOP, checksum_key=PAYOO_KEY, api_username="dvc-api",
                                              api_password="PayooApiPassword01", api_signature="PayooApiSignature01"),
                               session=session)
    connector.query_status(REFERENCE, amount=150_000, created_at=NOW)
    return connector, [PAYOO_KEY, "PayooApiPassword01", "PayooApiSignature01", secure_hash, ACCOUNT]


def nganluong_case(session: requests.Session, transport: CannedTransport) -> tuple[Any, list[str]]:
    transport.handler = lambda request: (200, {}, (
        f"<result><error_code>00</error_code><token>tok-secret-123</token><transaction_status>00</transaction_status>"
        f"<order_code>{REFERENCE}</order_code><total_amount>150000</total_amount><card_number>{CARD}</card_number>"
        f"<transaction_id>1</transaction_id></result>").encode())
    connector = NganLuongConnector("nganluong", entry("nganluong", base_url="https://nl.test", merchant_id="1",
                                                      merchant_password=NL_PASSWORD, receiver_email="e"),
                                   session=session)
    connector.query_status(REFERENCE, amount=150_000, created_at=NOW, provider_reference="tok-secret-123")
    md5 = hashlib.md5(NL_PASSWORD.encode()).hexdigest()
    return connector, [NL_PASSWORD, md5, "tok-secret-123", CARD]


def portal_case(session: requests.Session, transport: CannedTransport) -> tuple[Any, list[str]]:
    transport.handler = bank_answer({"reference": REFERENCE, "status": "PENDING", "bank_transaction_id": "FT1",
                                     "account": ACCOUNT}, 201)
    private = pem(PLATFORM_KEY, True)
    connector = PortalStandardConnector("vietcombank", entry(
        "vietcombank", base_url="https://vcb.test", merchant_id="DVCQG", platform_key_id="p",
        platform_private_key=private, bank_key_id=BANK_KID, bank_public_key=pem(BANK_KEY, False)),
        clock=clock, session=session)
    connector.create(order())
    secrets = [*private.splitlines()[1:-1], ACCOUNT]
    return connector, secrets


def vietqr_case(session: requests.Session, transport: CannedTransport) -> tuple[Any, list[str]]:
    transport.handler = bank_answer({"credits": [{"bank_transaction_id": "FT9", "amount": 150000,
                                                  "transfer_note": f"{REFERENCE} le phi",
                                                  "credited_at": "2026-11-22T02:00:00+00:00",
                                                  "account": {"bin": "970436", "number": ACCOUNT}}]})
    connector = VietQrTransferConnector("vietqr", entry(
        "vietqr", base_url="https://napas.test", merchant_id="DVCQG", platform_key_id="p",
        platform_private_key=pem(PLATFORM_KEY, True), bank_key_id=BANK_KID, bank_public_key=pem(BANK_KEY, False)),
        clock=clock, session=session)
    connector.query_status(REFERENCE, amount=150_000, created_at=NOW)
    return connector, [ACCOUNT]


# How many of each case's secrets (listed first) are configured keys rather than message values.
KEYS = {"vnpay_case": 1, "momo_case": 2, "payoo_case": 3, "nganluong_case": 2, "portal_case": 1, "vietqr_case": 0}


@pytest.mark.parametrize("case", [vnpay_case, momo_case, payoo_case, nganluong_case, portal_case, vietqr_case],
                         ids=["vnpay", "momo", "payoo", "nganluong", "portal", "vietqr"])
def test_transcripts_are_logged_without_keys_signatures_or_account_numbers(case, session, transport, caplog):
    caplog.set_level(logging.DEBUG, logger="dvc.connectors")
    connector, secrets = case(session, transport)
    keys = KEYS[case.__name__]
    secrets += signatures_in(transport.last)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "request:" in logged and "response:" in logged      # the transcript was written...
    assert REFERENCE in logged or "/v1/payments" in logged       # ...with what support needs
    leaked = [secret for secret in secrets if secret and secret in logged]
    assert leaked == []
    # Configured keys are masked wherever they appear, even outside any field the scrubber knows.
    for key in secrets[:keys]:
        assert key not in connector.scrub(f"dump {key} end")
