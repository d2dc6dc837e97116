"""Support for payment integration tests: the real service on PostgreSQL and a real agency callback receiver."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from dvc.payments.v1 import payments_pb2 as pb
from dvc.payments.v1 import payments_pb2_grpc
from flask import Flask, request

from payment_service import callback_signature
from payment_service.adapters.fake_connector import FakeConnector, FakeConnectors
from payment_service.adapters.receipts import FakeReceiptIssuer
from payment_service.bootstrap import Overrides, make_spec, settings_for
from payment_service.domain.connector import ConnectorInfo
from payment_service.service_layer.outbox import DispatchPolicy
from payment_service.service_layer.services import PaymentServices
from servicekit.config import PlatformSettings
from servicekit.http_edge import RunningHttp
from servicekit.process import RunningService, start
from servicekit.testing import LocalTokenIssuer, bearer

AUDIENCE = "dvc-payments"
SECRET = "integration-callback-secret"


@dataclass
class Receiver:
    """An agency's callback endpoint: verifies every signature, records each delivery, can fail on purpose."""

    secrets: list[str]
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    fail_for: dict[str, int] = field(default_factory=dict)  # payment id -> how many deliveries to refuse
    lock: threading.Lock = field(default_factory=threading.Lock)
    http: RunningHttp | None = None

    @property
    def url(self) -> str:
        assert self.http is not None
        return f"{self.http.url}/dvc-callbacks"

    def app(self) -> Flask:
        app = Flask("agency-receiver")

        @app.post("/dvc-callbacks")
        def receive() -> tuple[str, int]:
            body = request.get_data()
            try:
                callback_signature.verify(body, request.headers.get(callback_signature.HEADER, ""), self.secrets)
            except callback_signature.SignatureError:
                with self.lock:
                    self.bad_signatures += 1
                return "bad signature", 401
            payment_id = (request.get_json() or {}).get("payment", {}).get("id", "")
            with self.lock:
                if self.fail_for.get(payment_id, 0) > 0:
                    self.fail_for[payment_id] -= 1
                    return "try later", 503
                self.deliveries.append({"event_id": request.headers.get(callback_signature.EVENT_ID_HEADER),
                                        "body": request.get_json(), "at": time.time(),
                                        "signature": request.headers.get(callback_signature.HEADER)})
            return "", 204

        return app

    def event_ids(self) -> list[str]:
        with self.lock:
            return [delivery["event_id"] for delivery in self.deliveries]

    def for_payment(self, payment_id: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The deliveries about one payment, once at least ``count`` arrived (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                found = [d for d in self.deliveries if d["body"]["payment"]["id"] == payment_id]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.01)


@dataclass
class Platform:
    """The running service with everything a test drives it through."""

    running: RunningService
    services: PaymentServices
    tokens: LocalTokenIssuer
    connectors: FakeConnectors
    issuer: FakeReceiptIssuer
    receiver: Receiver
    channel: grpc.Channel
    database_url: str

    @property
    def stub(self) -> payments_pb2_grpc.PaymentServiceStub:
        return payments_pb2_grpc.PaymentServiceStub(self.channel)

    @property
    def http_url(self) -> str:
        assert self.running.http is not None
        return self.running.http.url

    def token(self, agency: str = "HCM", scopes: tuple[str, ...] = ("payments.create", "payments.read")) -> Any:
        return bearer(self.tokens.mint(f"{agency.lower()}-system", audience=AUDIENCE, kind="client", agency=agency,
                                       scopes=scopes))

    def admin(self) -> Any:
        return bearer(self.tokens.mint("operator", audience=AUDIENCE, kind="official", scopes=("payments.admin",)))

    def bank(self, code: str = "fakebank") -> FakeConnector:
        connector = self.connectors.get(code)
        assert connector is not None
        return connector


def create_request(key: str, **changes: Any) -> pb.CreatePaymentRequest:
    values: dict[str, Any] = {
        "idempotency_key": key, "dossier_code": "HS-2026-000777", "procedure_code": "1.000046",
        "service_code": "GPLX", "payer": pb.Payer(name="Trần Thị Bình", national_id="001190004321"),
        "fee_lines": [pb.FeeLine(kind=pb.FEE_KIND_LE_PHI, code="LP01", name="Lệ phí", amount=135_000),
                      pb.FeeLine(kind=pb.FEE_KIND_PHI, code="P01", name="Phí", amount=50_000)],
        "total_amount": 185_000,
        "beneficiary": pb.BeneficiaryAccount(bank_bin="970405", account="7111000000001"),
    }
    values.update(changes)
    return pb.CreatePaymentRequest(**values)


def start_platform(database_url: str, receiver: Receiver, **settings: Any) -> Platform:
    connectors = FakeConnectors(FakeConnector(info=ConnectorInfo("fakebank", "Fake bank", "bank")),
                                FakeConnector(info=ConnectorInfo("fakeqr", "Fake VietQR bank", "vietqr",
                                                                 supports_refund=False)))
    issuer = FakeReceiptIssuer()
    built: list[PaymentServices] = []
    tokens = LocalTokenIssuer()
    spec = make_spec(Overrides(connectors=connectors, issuer=issuer, seed=True, on_built=built.append,
                               dispatch_policy=DispatchPolicy(backoff_base_seconds=0.2, parallelism=4)))
    running = start(spec, settings_for(database_url, demo_callback_url=receiver.url, demo_callback_secret=SECRET,
                                       **settings), PlatformSettings(), verifier=tokens.verifier(AUDIENCE))
    assert running.grpc is not None
    channel = grpc.insecure_channel(f"127.0.0.1:{running.grpc.port}")
    return Platform(running, built[0], tokens, connectors, issuer, receiver, channel, database_url)


