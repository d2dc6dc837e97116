"""End to end through the real payment service (PostgreSQL, gRPC, HTTP edge, outbox) and the real sandboxes:
create → pay in the sandbox → signed callback → SUCCEEDED → agency callback delivered; a lost callback resolved
by the status sweep; reconciliation of a settlement file with one missing and one mismatched transaction."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import requests
from dvc.payments.v1 import payments_pb2 as pb
from dvc.payments.v1 import payments_pb2_grpc
from flask import Flask, request

from payment_service import callback_signature
from payment_service.adapters.connector_registry import ConnectorRegistry, default_sandbox_config
from payment_service.adapters.receipts import FakeReceiptIssuer
from payment_service.bootstrap import Overrides, make_spec, settings_for
from payment_service.sandbox import catalog
from payment_service.sandbox.common import VIETNAM, sandbox_of
from payment_service.sandbox.run import RunningSandboxes, start_all
from payment_service.service_layer.outbox import DispatchPolicy
from payment_service.service_layer.services import PaymentServices
from servicekit.config import PlatformSettings
from servicekit.http_edge import RunningHttp, start_http
from servicekit.process import RunningService, start
from servicekit.testing import LocalTokenIssuer, bearer, fresh_postgres_url

AUDIENCE = "dvc-payments"
AGENCY_SECRET = "connectors-e2e-agency-secret"


@dataclass
class Agency:
    """The province's callback endpoint: checks the platform's signature and keeps what it received."""

    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Flask:
        app = Flask("agency")

        @app.post("/dvc-callbacks")
        def receive() -> tuple[str, int]:
            body = request.get_data()
            try:
                callback_signature.verify(body, request.headers.get(callback_signature.HEADER, ""), [AGENCY_SECRET])
            except callback_signature.SignatureError:
                return "bad signature", 401
            with self.lock:
                self.received.append(request.get_json())
            return "", 204

        return app

    def statuses(self, reference: str) -> list[str]:
        with self.lock:
            return [event["payment"]["status"] for event in self.received if event["payment"]["reference"] == reference]

    def wait_for(self, reference: str, status: str, timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and status not in self.statuses(reference):
            time.sleep(0.05)
        return self.statuses(reference)


@dataclass
class Stack:
    service: RunningService
    services: PaymentServices
    sandboxes: RunningSandboxes
    agency: Agency
    agency_http: RunningHttp
    channel: grpc.Channel
    tokens: LocalTokenIssuer
    http_url: str

    @property
    def stub(self) -> payments_pb2_grpc.PaymentServiceStub:
        return payments_pb2_grpc.PaymentServiceStub(self.channel)

    def token(self) -> Any:
        return bearer(self.tokens.mint("hcm-system", audience=AUDIENCE, kind="client", agency="HCM",
                                       scopes=("payments.create", "payments.read")))

    def admin(self) -> Any:
        return bearer(self.tokens.mint("operator", audience=AUDIENCE, kind="official", scopes=("payments.admin",
                                                                                              "payments.read")))

    def sandbox_url(self, code: str) -> str:
        return self.sandboxes.servers[code].url

    def create(self, amount: int) -> pb.Payment:
        answer = self.stub.CreatePayment(pb.CreatePaymentRequest(
            idempotency_key=uuid.uuid4().hex, dossier_code="HS-2026-012345", procedure_code="1.000046",
            service_code="GPLX", payer=pb.Payer(name="Nguyễn Văn An", national_id="001190004321"),
            fee_lines=[pb.FeeLine(kind=pb.FEE_KIND_LE_PHI, code="LP01", name="Lệ phí", amount=amount)],
            total_amount=amount, beneficiary=pb.BeneficiaryAccount(bank_bin="970405", account="7111000000001")),
            metadata=self.token(), timeout=10)
        return answer.payment

    def get(self, payment_id: str) -> pb.Payment:
        return self.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment_id), metadata=self.token(),
                                    timeout=10).payment

    def choose(self, reference: str, code: str) -> None:
        """The payer picks a channel on the platform's page and is sent to the counterpart."""
        answer = requests.get(f"{self.http_url}/pay/{reference}", params={"channel": code}, allow_redirects=False,
                              timeout=10)
        assert answer.status_code == 302, answer.text
        if code == "vnpay":  # VNPay's signed URL is opened by the payer's browser
            assert requests.get(answer.headers["Location"], allow_redirects=False, timeout=10).status_code == 302

    def pay(self, code: str, reference: str) -> dict[str, Any]:
        answer = requests.post(f"{self.sandbox_url(code)}/sandbox/payments/{reference}/pay", timeout=10)
        answer.raise_for_status()
        sandbox_of(self.sandboxes.apps[code]).sender.wait_idle(10)
        return dict(requests.get(f"{self.sandbox_url(code)}/sandbox/payments/{reference}", timeout=10).json())


def sandbox_registry(sandboxes: RunningSandboxes, base: str) -> ConnectorRegistry:
    """Connectors for the running sandboxes, as the payment service at ``base`` configures them."""
    return ConnectorRegistry.from_config(
        default_sandbox_config(ports={code: server.port for code, server in sandboxes.servers.items()},
                               timeout_seconds=5), callback_base_url=f"{base}/callbacks")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    agency = Agency()
    agency_http = start_http(agency.app(), name="agency")
    # The sandboxes and connectors need the payment service's callback address before it starts.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sandboxes = start_all(ports=dict.fromkeys(catalog.SANDBOX_PORTS, 0), notify_url_base=f"{base}/callbacks",
                          settings={"retry_backoff_seconds": 0.1})
    service: RunningService | None = None
    try:
        registry = sandbox_registry(sandboxes, base)
        built: list[PaymentServices] = []
        tokens = LocalTokenIssuer()
        spec = make_spec(Overrides(connectors=registry, issuer=FakeReceiptIssuer(), seed=True, on_built=built.append,
                                   dispatch_policy=DispatchPolicy(backoff_base_seconds=0.2, parallelism=4)))
        settings = dataclasses.replace(
            settings_for(fresh_postgres_url("conne2e"), public_base_url=base,
                         demo_callback_url=f"{agency_http.url}/dvc-callbacks", demo_callback_secret=AGENCY_SECRET,
                         status_check_after_seconds=0.0, sweep_interval_seconds=3600.0), http_port=port)
        service = start(spec, settings, PlatformSettings(), verifier=tokens.verifier(AUDIENCE))
        assert service.grpc is not None and service.http is not None
        channel = grpc.insecure_channel(f"127.0.0.1:{service.grpc.port}")
        yield Stack(service, built[0], sandboxes, agency, agency_http, channel, tokens, service.http.url)
        channel.close()
    finally:
        if service is not None:
            service.stop(grace_seconds=0.5)
        sandboxes.stop()
        agency_http.stop()


@pytest.mark.parametrize("code", ["vnpay", "momo", "payoo", "nganluong", "vietcombank", "agribank", "vnptpay"])
def test_a_payment_through_each_counterpart_succeeds_and_the_agency_hears_of_it(stack: Stack, code: str):
    payment = stack.create(185_000)
    stack.choose(payment.reference, code)
    stack.pay(code, payment.reference)
    assert "succeeded" in stack.agency.wait_for(payment.reference, "succeeded")
    paid = stack.get(payment.id)
    assert (paid.status, paid.paid_amount, paid.connector_code) == (pb.PAYMENT_STATUS_SUCCEEDED, 185_000, code)


def test_a_vietqr_transfer_is_matched_on_the_reference_in_its_note(stack: Stack):
    payment = stack.create(215_000)
    scanned = requests.post(f"{stack.sandbox_url('vietqr')}/sandbox/scan", json={"qr": payment.vietqr_payload},
                            timeout=10)
    assert scanned.status_code == 201, scanned.text
    assert "succeeded" in stack.agency.wait_for(payment.reference, "succeeded")
    assert stack.get(payment.id).status == pb.PAYMENT_STATUS_SUCCEEDED


def test_a_wrong_amount_or_a_forged_callback_never_makes_a_payment_succeed(stack: Stack):
    underpaid = stack.create(185_055)
    stack.choose(underpaid.reference, "vnpay")
    view = stack.pay("vnpay", underpaid.reference)
    assert '"RspCode": "04"' in view["deliveries"][0]["body"]
    forged = stack.create(185_066)
    stack.choose(forged.reference, "vnpay")
    view = stack.pay("vnpay", forged.reference)
    first = min(view["deliveries"], key=lambda delivery: delivery["at"])
    assert "forged" in first["label"] and '"RspCode": "97"' in first["body"]
    assert "succeeded" in stack.agency.wait_for(forged.reference, "succeeded")   # the genuine one, after it
    assert stack.get(underpaid.id).status != pb.PAYMENT_STATUS_SUCCEEDED


def test_duplicate_callbacks_change_nothing_twice(stack: Stack):
    payment = stack.create(185_077)
    stack.choose(payment.reference, "momo")
    view = stack.pay("momo", payment.reference)
    assert [delivery["status"] for delivery in view["deliveries"]] == [204, 204]
    stack.agency.wait_for(payment.reference, "succeeded")
    time.sleep(0.5)
    assert stack.agency.statuses(payment.reference).count("succeeded") == 1


@pytest.mark.parametrize("code", ["vietcombank", "nganluong", "momo"])
def test_a_lost_callback_is_resolved_by_the_status_sweep(stack: Stack, code: str):
    payment = stack.create(185_031)
    stack.choose(payment.reference, code)
    view = stack.pay(code, payment.reference)
    assert view["deliveries"][0]["label"] == "lost on purpose"
    assert stack.get(payment.id).status == pb.PAYMENT_STATUS_PENDING
    stack.services.sweep_pending()
    assert "succeeded" in stack.agency.wait_for(payment.reference, "succeeded")
    assert stack.get(payment.id).status == pb.PAYMENT_STATUS_SUCCEEDED


def test_a_nganluong_payment_is_found_by_the_sweep_of_a_restarted_service(stack: Stack):
    """Ngân Lượng finds a checkout only by the token its create returned: a service restarted since (new
    connectors that remember nothing) must still resolve the payment, from the token stored with it."""
    payment = stack.create(185_031)
    stack.choose(payment.reference, "nganluong")
    view = stack.pay("nganluong", payment.reference)
    assert view["deliveries"][0]["label"] == "lost on purpose"
    assert stack.get(payment.id).status == pb.PAYMENT_STATUS_PENDING
    running = stack.services
    restarted = PaymentServices(running.uow_factory, clock=running.clock,
                                connectors=sandbox_registry(stack.sandboxes, stack.http_url), signer=running.signer,
                                notifier=running.notifier, config=running.config)
    assert restarted.sweep_pending() == 1
    assert stack.get(payment.id).status == pb.PAYMENT_STATUS_SUCCEEDED
    assert "succeeded" in stack.agency.wait_for(payment.reference, "succeeded")


def test_reconciliation_finds_the_missing_and_the_mismatched_transaction(stack: Stack):
    payments = {name: stack.create(amount) for name, amount in (("normal", 250_000), ("missing", 250_097),
                                                                ("mismatched", 250_098))}
    for payment in payments.values():
        stack.choose(payment.reference, "bidv")
        stack.pay("bidv", payment.reference)
        stack.agency.wait_for(payment.reference, "succeeded")
    day = datetime.now(UTC).astimezone(VIETNAM).date().isoformat()
    summary = stack.stub.ImportSettlementFile(pb.ImportSettlementFileRequest(
        connector_code="bidv", settlement_date=day, idempotency_key=uuid.uuid4().hex),
        metadata=stack.admin(), timeout=30).summary
    assert (summary.missing_at_bank, summary.amount_mismatch) == (1, 1)
    report = stack.stub.GetReconciliationReport(pb.GetReconciliationReportRequest(report_id=summary.report_id,
                                                                                  page_size=500),
                                                metadata=stack.admin(), timeout=10)
    verdicts = {item.reference: item for item in report.items}
    assert verdicts[payments["normal"].reference].status == pb.RECONCILIATION_STATUS_MATCHED
    assert verdicts[payments["missing"].reference].status == pb.RECONCILIATION_STATUS_MISSING_AT_BANK
    mismatched = verdicts[payments["mismatched"].reference]
    assert mismatched.status == pb.RECONCILIATION_STATUS_AMOUNT_MISMATCH
    assert (mismatched.ledger_amount, mismatched.bank_amount) == (250_098, 251_098)
