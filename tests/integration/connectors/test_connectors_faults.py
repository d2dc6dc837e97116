"""Real network faults: a counterpart that sleeps, one that is gone, sandboxes told to fail, the circuit breaker
opening on them and closing after a probe, and sandboxes refusing unsigned or replayed requests."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import requests
from connectors_it import World, order, start_world
from flask import Flask

from payment_service.adapters.circuit_breaker import BreakerState
from payment_service.adapters.connectors import portal_standard, vietqr_transfer
from payment_service.adapters.connectors.base import ConfigEntry
from payment_service.adapters.connectors.momo import MomoConnector
from payment_service.domain.connector import ConnectorError, ConnectorErrorKind
from payment_service.domain.reference import new_reference
from payment_service.sandbox import catalog
from servicekit.http_edge import start_http


@pytest.fixture(scope="module")
def sleepy() -> Iterator[str]:
    """A counterpart that answers after 3 seconds, or trickles its body one byte every 0.2 s."""
    release = threading.Event()
    app = Flask("sleepy")

    @app.post("/v2/gateway/api/query")
    def slow() -> str:
        release.wait(3)
        return "{}"

    @app.post("/v2/gateway/api/create")
    def trickle():  # type: ignore[no-untyped-def]
        def body() -> Iterator[bytes]:
            for _ in range(30):
                if release.wait(0.2):
                    return
                yield b" "
        return app.response_class(body(), content_type="application/json")

    server = start_http(app, name="sleepy")
    yield server.url
    release.set()
    server.stop()


def momo_at(url: str, timeout: float) -> MomoConnector:
    return MomoConnector("momo", ConfigEntry("momo", {"base_url": url, "notify_url": "http://127.0.0.1:9/cb",
                                                      "timeout_seconds": timeout, **catalog.MOMO}, environ={}))


def test_a_counterpart_that_never_answers_times_out_within_the_budget(sleepy):
    connector = momo_at(sleepy, 0.4)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVCX", amount=1, created_at=datetime.now(UTC))
    assert failure.value.kind is ConnectorErrorKind.TIMEOUT
    assert time.monotonic() - started < 1.5


def test_a_trickled_answer_is_cut_at_the_overall_deadline(sleepy):
    connector = momo_at(sleepy, 0.7)
    started = time.monotonic()
    with pytest.raises(ConnectorError) as failure:
        connector.create(order(new_reference(), 1000))
    assert failure.value.kind is ConnectorErrorKind.TIMEOUT
    assert time.monotonic() - started < 2.0


def test_a_counterpart_that_is_gone_is_unavailable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    connector = momo_at(f"http://127.0.0.1:{port}", 2)
    with pytest.raises(ConnectorError) as failure:
        connector.query_status("DVCX", amount=1, created_at=datetime.now(UTC))
    assert failure.value.kind is ConnectorErrorKind.UNAVAILABLE


@pytest.fixture
def fragile() -> Iterator[World]:
    running = start_world(failure_threshold=2, cooldown_seconds=0.3)
    yield running
    running.stop()


def settings(world: World, code: str, **values: object) -> None:
    assert requests.post(f"{world.url(code)}/sandbox/settings", json=values, timeout=5).status_code == 200


def test_the_breaker_opens_on_a_failing_sandbox_and_a_probe_closes_it(fragile: World):
    code = "bidv"
    settings(fragile, code, api_mode="error")
    connector = fragile.connector(code)
    for _ in range(2):
        with pytest.raises(ConnectorError) as failure:
            connector.create(order(new_reference(), 10_000))
        assert failure.value.kind is ConnectorErrorKind.UNAVAILABLE
    assert not fragile.registry.is_available(code)
    with pytest.raises(ConnectorError) as refused:
        connector.create(order(new_reference(), 10_000))
    assert refused.value.provider_code == "CIRCUIT_OPEN"
    settings(fragile, code, api_mode="normal")
    time.sleep(0.35)
    assert fragile.registry.is_available(code)            # half-open: the next call is the probe
    connector.create(order(new_reference(), 10_000))
    assert connector.breaker.state is BreakerState.CLOSED
    health = {item.code: item for item in fragile.registry.health()}[code]
    assert (health.failures, health.last_error_kind) == (2, "unavailable")


def test_a_sandbox_in_timeout_mode_makes_calls_time_out(fragile: World):
    settings(fragile, "agribank", api_mode="timeout", api_fault_count=1, api_timeout_seconds=1.0)
    connector = fragile.connector("agribank").inner
    connector.http.timeout_seconds = 0.3
    with pytest.raises(ConnectorError) as failure:
        connector.create(order(new_reference(), 10_000))
    assert failure.value.kind is ConnectorErrorKind.TIMEOUT
    connector.http.timeout_seconds = 5
    assert connector.create(order(new_reference(), 10_000)).redirect_url   # only one call was to misbehave


def test_the_portal_bank_sandbox_refuses_unsigned_forged_and_replayed_requests(world: World):
    url = f"{world.url('mb')}{portal_standard.PAYMENTS_PATH}"
    body = json.dumps({"merchant_id": catalog.MERCHANT_ID, "reference": new_reference(), "amount": 1000,
                       "currency": "VND"}).encode()
    unsigned = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert (unsigned.status_code, unsigned.json()["error"]["code"]) == (401, "BAD_SIGNATURE")
    now = datetime.now(UTC).timestamp()
    signer = portal_standard.PortalSigner(catalog.portal_key_id("mb", "platform"), catalog.portal_key("mb", "platform"))
    wrong_bank = portal_standard.PortalSigner(catalog.portal_key_id("mb", "platform"),
                                              catalog.portal_key("bidv", "platform"))
    forged = requests.post(url, data=body, timeout=5,
                           headers=wrong_bank.request_headers("POST", portal_standard.PAYMENTS_PATH, body, now=now))
    assert forged.json()["error"]["code"] == "BAD_SIGNATURE"
    stale = requests.post(url, data=body, timeout=5,
                          headers=signer.request_headers("POST", portal_standard.PAYMENTS_PATH, body, now=now - 600))
    assert stale.json()["error"]["code"] == "STALE_TIMESTAMP"
    headers = {**signer.request_headers("POST", portal_standard.PAYMENTS_PATH, body, now=now),
               "Content-Type": "application/json"}
    first = requests.post(url, data=body, headers=headers, timeout=5)
    replayed = requests.post(url, data=body, headers=headers, timeout=5)
    assert first.status_code == 201
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (401, "REPLAYED_NONCE")
    # Every answer, errors included, is signed by the bank and bound to the request it answers.
    verifier = portal_standard.PortalVerifier(catalog.portal_key_id("mb", "bank"),
                                              catalog.portal_key("mb", "bank").public_key(),
                                              portal_standard.MemoryNonceStore())
    verifier.verify_response(401, headers[portal_standard.HEADER_NONCE], dict(replayed.headers), replayed.content,
                             now=datetime.now(UTC).timestamp())


@pytest.mark.parametrize(("code", "method", "path"), [
    ("mb", "POST", portal_standard.PAYMENTS_PATH),
    ("mb", "GET", f"{portal_standard.PAYMENTS_PATH}/DVC0000000000"),
    ("mb", "POST", portal_standard.REFUNDS_PATH),
    ("mb", "GET", f"{portal_standard.SETTLEMENTS_PATH}/2026-03-02"),
    ("vietqr", "GET", vietqr_transfer.CREDITS_PATH),
    ("vietqr", "GET", f"{vietqr_transfer.STATEMENTS_PATH}/2026-03-02"),
])
def test_every_signed_route_of_the_bank_sandboxes_refuses_an_unsigned_request(world: World, code: str,
                                                                             method: str, path: str):
    answer = requests.request(method, f"{world.url(code)}{path}", data=b"{}", timeout=5,
                              headers={"Content-Type": "application/json"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (401, "BAD_SIGNATURE")
    assert portal_standard.HEADER_SIGNATURE in answer.headers  # refused, and still signed by the bank


def test_hmac_sandboxes_refuse_bad_signatures(world: World):
    answer = requests.post(f"{world.url('momo')}/v2/gateway/api/create", timeout=5,
                           json={"partnerCode": catalog.MOMO["partner_code"], "orderId": "X", "amount": 1000,
                                 "requestId": "r", "signature": "0" * 64})
    assert answer.json()["resultCode"] == 11
    vnpay = requests.get(f"{world.url('vnpay')}/paymentv2/vpcpay.html", timeout=5,
                         params={"vnp_TxnRef": "X", "vnp_Amount": "100000", "vnp_SecureHash": "00"})
    assert vnpay.status_code == 400 and "97" in vnpay.text
