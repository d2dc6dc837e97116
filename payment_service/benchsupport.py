"""Benchmark support: the real payment service on PostgreSQL with a token and request factory for `make bench`."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field
from typing import Any

from dvc.payments.v1 import payments_pb2 as pb

from payment_service.adapters.fake_connector import FakeConnector, FakeConnectors
from payment_service.bootstrap import DEMO_AGENCIES, Overrides, make_spec, settings_for
from payment_service.domain.connector import ConnectorInfo
from payment_service.service_layer.services import PaymentServices
from servicekit.config import PlatformSettings
from servicekit.process import RunningService, start
from servicekit.testing import LocalTokenIssuer

AUDIENCE = "dvc-payments"
BENCH_AGENCY, _NAME, _ACCOUNTS = DEMO_AGENCIES[0]
BENCH_BIN, BENCH_ACCOUNT, _ = _ACCOUNTS[0]


def create_request(i: int, run: str = "bench") -> pb.CreatePaymentRequest:
    """A distinct, valid CreatePayment for the seeded demo agency (two fee lines, 13-digit-safe amounts)."""
    fee = 50_000 + i % 1000
    charge = 30_000
    return pb.CreatePaymentRequest(
        idempotency_key=f"{run}-{i}", dossier_code=f"HS-{i:08d}", procedure_code="1.000046",
        service_code="DVC-GPLX", payer=pb.Payer(name="Nguyen Van A", national_id=f"079{i % 10**9:09d}"),
        fee_lines=[pb.FeeLine(kind=pb.FEE_KIND_PHI, code="P01", name="Phí thẩm định", amount=fee),
                   pb.FeeLine(kind=pb.FEE_KIND_LE_PHI, code="LP01", name="Lệ phí cấp giấy phép", amount=charge)],
        total_amount=fee + charge, beneficiary=pb.BeneficiaryAccount(bank_bin=BENCH_BIN, account=BENCH_ACCOUNT))


@dataclass
class BenchService:
    """A running payment service and what a load generator needs to call it."""

    running: RunningService
    agency_token: str
    services: PaymentServices
    run_id: str = "bench"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def grpc_port(self) -> int:
        assert self.running.grpc is not None
        return self.running.grpc.port

    @property
    def http_url(self) -> str:
        assert self.running.http is not None
        return self.running.http.url

    def create_request(self, i: int) -> pb.CreatePaymentRequest:
        return create_request(i, self.run_id)

    def render_qr_png_for(self, payment_id: str) -> bytes:
        """The cached QR PNG of a payment, as GetPaymentQr and /pay/<reference>/qr.png serve it."""
        return self._qr.render_qr_png_for(payment_id)

    def stop(self) -> None:
        self.running.stop(grace_seconds=1.0)

    @property
    def _qr(self) -> Any:
        servicer = self.running.components.registrations[0].servicer
        return servicer.qr


def start_for_bench(database_url: str, run_id: str = "bench") -> BenchService:
    """Start the payment service on ``database_url`` (migrated, demo agency seeded, no workers, no network
    connectors), with a one-hour agency token; ``.info`` is a picklable summary for a parent process."""
    issuer = LocalTokenIssuer()
    built: list[PaymentServices] = []
    spec = make_spec(Overrides(connectors=FakeConnectors(FakeConnector(info=ConnectorInfo("fakebank", "Fake bank",
                                                                                         "bank"))),
                               seed=True, workers=False, on_built=built.append))
    running = start(spec, settings_for(database_url), PlatformSettings(), verifier=issuer.verifier(AUDIENCE))
    token = issuer.mint("bench-agency-system", audience=AUDIENCE, kind="client", agency=BENCH_AGENCY,
                        scopes=("payments.create", "payments.read"), lifetime=3600)
    service = BenchService(running, token, built[0], run_id)
    service.info = {"grpc_port": service.grpc_port, "http_url": service.http_url, "agency_token": token,
                    "run_id": run_id}
    return service


def fetch_qr(http_url: str, reference: str) -> bytes:
    """GET the public QR image (bounded wait)."""
    with urllib.request.urlopen(f"{http_url}/pay/{reference}/qr.png", timeout=10) as response:  # noqa: S310
        return bytes(response.read())
