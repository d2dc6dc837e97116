"""The callback routes: verification first, the core's outcome answered in each provider's exact format."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from connector_testkit import CannedTransport, clock, entry
from flask import Flask
from test_connectors_momo import ACCESS as MOMO_ACCESS
from test_connectors_momo import PARTNER as MOMO_PARTNER
from test_connectors_momo import SECRET as MOMO_SECRET
from test_connectors_momo import ipn as momo_ipn
from test_connectors_payoo import KEY as PAYOO_KEY
from test_connectors_payoo import SHOP as PAYOO_SHOP
from test_connectors_payoo import notify as payoo_notify
from test_connectors_portal import BANK_KEY, BANK_KID, NOTIFY_PATH, PLATFORM_KEY, bank_headers, notice, pem
from test_connectors_vnpay import SECRET as VNPAY_SECRET
from test_connectors_vnpay import TMN, ipn, signed

from payment_service.adapters.connectors.momo import MomoConnector
from payment_service.adapters.connectors.nganluong import NganLuongConnector
from payment_service.adapters.connectors.payoo import PayooConnector
from payment_service.adapters.connectors.portal_standard import PortalStandardConnector
from payment_service.adapters.connectors.vnpay import VnpayConnector
from payment_service.domain.connector import CallbackOutcome, Connector, InboundNotification
from payment_service.entrypoints.callbacks import callbacks_blueprint


class Core:
    """A stub handle_notification: records what reached it and answers a chosen outcome."""

    def __init__(self) -> None:
        self.outcome = CallbackOutcome.ACCEPTED
        self.received: list[tuple[str, InboundNotification]] = []
        self.crash = False
        self.pulled: list[tuple[str, str]] = []

    def __call__(self, code: str, notification: InboundNotification) -> CallbackOutcome:
        self.received.append((code, notification))
        if self.crash:
            raise RuntimeError("database down")
        return self.outcome


class Crashing:
    """A connector with a bug in its parser."""

    def __init__(self, inner: Connector) -> None:
        self.info = inner.info
        self.inner = inner

    def parse_callback(self, request: Any) -> InboundNotification:
        raise KeyError("bug")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def transport() -> CannedTransport:
    return CannedTransport()


@pytest.fixture
def setup(transport):
    session = requests.Session()
    session.mount("https://", transport)
    vnpay = VnpayConnector("vnpay", entry("vnpay", base_url="https://v.test", tmn_code=TMN, hash_secret=VNPAY_SECRET))
    connectors: dict[str, Any] = {
        "vnpay": vnpay,
        "momo": MomoConnector("momo", entry("momo", base_url="https://m.test", partner_code=MOMO_PARTNER,
                                            access_key=MOMO_ACCESS, secret_key=MOMO_SECRET)),
        "payoo": PayooConnector("payoo", entry("payoo", base_url="https://p.test", business_username="dvc",
                                               shop_id=PAYOO_SHOP, checksum_key=PAYOO_KEY, api_username="a",
                                               api_password="b", api_signature="c")),
        "vietcombank": PortalStandardConnector("vietcombank", entry(
            "vietcombank", base_url="https://vcb.test", merchant_id="DVCQG", platform_key_id="p",
            platform_private_key=pem(PLATFORM_KEY, True), bank_key_id=BANK_KID, bank_public_key=pem(BANK_KEY, False)),
            clock=clock),
        "nganluong": NganLuongConnector("nganluong", entry("nganluong", base_url="https://nl.test", merchant_id="1",
                                                           merchant_password="pw", receiver_email="e"),
                                        session=session),
        "buggy": Crashing(vnpay),
    }
    core = Core()
    app = Flask("callbacks-test")
    app.register_blueprint(callbacks_blueprint(connectors, core, lambda code, ref: core.pulled.append((code, ref))))
    return app.test_client(), core


VNPAY_ANSWERS = [(CallbackOutcome.ACCEPTED, "00"), (CallbackOutcome.UNKNOWN_REFERENCE, "01"),
                 (CallbackOutcome.DUPLICATE, "02"), (CallbackOutcome.AMOUNT_MISMATCH, "04"),
                 (CallbackOutcome.REJECTED, "99"), (CallbackOutcome.ERROR, "99")]


@pytest.mark.parametrize(("outcome", "code"), VNPAY_ANSWERS)
def test_vnpay_ipn_gets_the_rspcode_of_the_core_outcome(setup, outcome, code):
    client, core = setup
    core.outcome = outcome
    answer = client.get("/callbacks/vnpay", query_string=signed(ipn()))
    assert answer.status_code == 200 and answer.get_json()["RspCode"] == code
    [(connector_code, notification)] = core.received
    assert connector_code == "vnpay" and notification.amount == 150_000


def test_a_forged_vnpay_ipn_gets_97_and_never_reaches_the_core(setup):
    client, core = setup
    answer = client.get("/callbacks/vnpay", query_string={**signed(ipn()), "vnp_Amount": "100"})
    assert answer.get_json() == {"RspCode": "97", "Message": "Invalid signature"}
    assert core.received == []


def test_a_core_failure_asks_the_provider_to_retry(setup):
    client, core = setup
    core.crash = True
    assert client.get("/callbacks/vnpay", query_string=signed(ipn())).get_json()["RspCode"] == "99"


def test_a_connector_bug_never_lets_the_message_through(setup):
    client, core = setup
    answer = client.get("/callbacks/buggy", query_string=signed(ipn()))
    assert answer.get_json()["RspCode"] == "99" and core.received == []


@pytest.mark.parametrize(("outcome", "status"), [(CallbackOutcome.ACCEPTED, 204), (CallbackOutcome.DUPLICATE, 204),
                                                 (CallbackOutcome.AMOUNT_MISMATCH, 400),
                                                 (CallbackOutcome.UNKNOWN_REFERENCE, 400)])
def test_momo(setup, outcome, status):
    client, core = setup
    core.outcome = outcome
    assert client.post("/callbacks/momo", json=momo_ipn()).status_code == status


def test_momo_forged(setup):
    client, core = setup
    answer = client.post("/callbacks/momo", json={**momo_ipn(), "amount": 1})
    assert answer.status_code == 400 and json.loads(answer.data)["message"] == "bad_signature"
    assert core.received == []


def test_payoo(setup):
    client, core = setup
    notification = payoo_notify()
    answer = client.post("/callbacks/payoo", data=notification.body,
                         content_type="application/x-www-form-urlencoded")
    assert (answer.status_code, answer.data) == (200, b"NOTIFY_RECEIVED")
    core.outcome = CallbackOutcome.UNKNOWN_REFERENCE
    answer = client.post("/callbacks/payoo", data=notification.body, content_type="application/x-www-form-urlencoded")
    assert answer.status_code == 400
    forged = payoo_notify(key="wrong-key")
    answer = client.post("/callbacks/payoo", data=forged.body, content_type="application/x-www-form-urlencoded")
    assert (answer.status_code, answer.data) == (400, b"NOTIFY_REJECTED BAD_SIGNATURE")
    assert len(core.received) == 2


@pytest.mark.parametrize(("outcome", "status", "code"), [
    (CallbackOutcome.ACCEPTED, 200, "OK"), (CallbackOutcome.DUPLICATE, 200, "DUPLICATE"),
    (CallbackOutcome.UNKNOWN_REFERENCE, 404, "UNKNOWN_REFERENCE"),
    (CallbackOutcome.AMOUNT_MISMATCH, 422, "AMOUNT_MISMATCH")])
def test_portal_bank(setup, outcome, status, code):
    client, core = setup
    core.outcome = outcome
    body = notice()
    headers = {name.upper(): value for name, value in bank_headers("POST", NOTIFY_PATH, body).items()}
    answer = client.post("/callbacks/vietcombank", data=body, headers=headers, content_type="application/json")
    assert (answer.status_code, answer.get_json()["code"]) == (status, code)


def test_portal_bank_bad_signature(setup):
    client, core = setup
    body = notice()
    answer = client.post("/callbacks/vietcombank", data=notice(amount=1),
                         headers=bank_headers("POST", NOTIFY_PATH, body), content_type="application/json")
    assert (answer.status_code, answer.get_json()["code"]) == (401, "BAD_SIGNATURE")
    assert core.received == []


def test_a_pull_only_return_whose_pull_fails_asks_the_core_to_pull_later(setup, transport):
    client, core = setup

    def hang(request):
        raise requests.ReadTimeout("slow")

    transport.handler = hang
    answer = client.get("/callbacks/nganluong", query_string={"token": "t", "order_code": "DVC7K2M9QX4TB1HZ"})
    assert answer.status_code == 503 and answer.content_type.startswith("text/html")
    assert core.pulled == [("nganluong", "DVC7K2M9QX4TB1HZ")] and core.received == []


def test_an_unknown_connector_is_404(setup):
    client, _ = setup
    assert client.post("/callbacks/paypal", data=b"{}").status_code == 404
