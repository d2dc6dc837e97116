"""The whole platform in this process for the browser tests: identity with the VNeID sandbox, the wallet on
PostgreSQL and SeaweedFS, the payment service with its bank sandboxes, all on free ports; plus the agencies'
side (issuing, redeeming, creating payments) done the way their systems do it, over gRPC with identity's tokens."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import grpc
import requests
from dvc.identity.v1 import identity_pb2 as idpb
from dvc.identity.v1 import identity_pb2_grpc
from dvc.payments.v1 import payments_pb2 as paypb
from dvc.payments.v1 import payments_pb2_grpc
from dvc.wallet.v1 import wallet_pb2 as walletpb
from dvc.wallet.v1 import wallet_pb2_grpc
from flask import Flask
from google.protobuf.timestamp_pb2 import Timestamp
from playwright.sync_api import expect

from identity_service.bootstrap import start_identity
from identity_service.config import IdentitySettings
from identity_service.sandbox.app import create_app as create_idp_sandbox
from payment_service.adapters.connector_registry import ConnectorRegistry, default_sandbox_config
from payment_service.bootstrap import Overrides, make_spec, settings_for
from payment_service.sandbox.run import RunningSandboxes, start_all
from servicekit.config import PlatformSettings
from servicekit.http_edge import RunningHttp, start_http
from servicekit.process import RunningService, start
from servicekit.s3 import drop_bucket, make_client
from servicekit.testing import bearer, fresh_postgres_url
from wallet_service.bootstrap import SPEC as WALLET_SPEC
from wallet_service.bootstrap import WalletSettings, dev_issuer_keys
from wallet_service.domain.manifest import manifest_bytes, sign

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ISSUER = "https://identity.e2e.dvc.local"
ADMIN_CLIENT = ("dvc-dev-admin", "dev-secret-dvc-dev-admin-0005")
PROVINCE_CLIENT = ("hcm-dossier-system", "dev-secret-hcm-dossier-system-0001")
RECEIVER_CLIENT = ("hn-dossier-receiver", "dev-secret-hn-dossier-receiver-0003")
PAYMENT_CLIENT = ("dvc-payment-service", "dev-secret-dvc-payment-service-0004")  # issues e-receipts to wallets
RECEIVER_AGENCY = "HN"
JUSTICE = "STP-HCM"
# Sandbox VNeID accounts (identity_service/sandbox/accounts.py): two level-2 citizens.
CITIZEN = ("001085000101", "Nguyễn Văn An")
OTHER_CITIZEN = ("048195000505", "Phạm Thu Dung")
BANK_SANDBOXES = ("vietcombank", "vnpay", "momo", "vietqr")
PDF_HEAD = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"


class ShiftedClock:
    """The payment service's clock, which tests may move forward (to reach an expiry without waiting for it)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def providers_yaml(vneid_url: str) -> str:
    return f"""
providers:
  - id: vneid
    display_name: VNeID (sandbox)
    kind: citizen
    issuer: {vneid_url}
    discovery_url: {vneid_url}/.well-known/openid-configuration
    client_id: dvc-portal
    client_secret: dev-sandbox-vneid-secret
    allowed_algorithms: [ES256]
    claims: {{national_id: so_dinh_danh, name: ho_va_ten, level: muc_do_dinh_danh, dependents: giam_ho_cho}}
"""


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


@dataclass
class Platform:
    """The running services and the agencies' clients."""

    vneid: RunningHttp
    identity: RunningService
    wallet: RunningService
    payment: RunningService
    sandboxes: RunningSandboxes
    agency_receiver: RunningHttp
    s3: dict[str, str]
    bucket: str
    payment_clock: ShiftedClock
    channels: list[grpc.Channel] = field(default_factory=list)
    issuer_client: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        assert self.identity.grpc and self.wallet.grpc and self.payment.grpc
        self.identity_stub = identity_pb2_grpc.IdentityServiceStub(self._channel(self.identity.grpc.port))
        self.wallet_stub = wallet_pb2_grpc.WalletServiceStub(self._channel(self.wallet.grpc.port))
        self.payment_stub = payments_pb2_grpc.PaymentServiceStub(self._channel(self.payment.grpc.port))

    def _channel(self, port: int) -> grpc.Channel:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.channels.append(channel)
        return channel

    @property
    def wallet_url(self) -> str:
        assert self.wallet.http is not None
        return self.wallet.http.url

    @property
    def payment_url(self) -> str:
        assert self.payment.http is not None
        return self.payment.http.url

    # --- tokens ---------------------------------------------------------------------------------------------

    def client_token(self, client: tuple[str, str], audience: str) -> str:
        answer = self.identity_stub.IssueClientToken(idpb.IssueClientTokenRequest(
            client_id=client[0], client_secret=client[1], audience=audience), timeout=10)
        return str(answer.tokens.access_token)

    def register_issuer_client(self) -> None:
        """The civil-status department's system, registered by the platform's administrator."""
        admin = bearer(self.client_token(ADMIN_CLIENT, "dvc-identity"))
        answer = self.identity_stub.RegisterClient(idpb.RegisterClientRequest(
            idempotency_key=uuid.uuid4().hex, client_id="stp-hcm-registry", display_name="Sở Tư pháp TP.HCM",
            agency=JUSTICE, scopes=["wallet.issue"], auth_method=idpb.CLIENT_AUTH_METHOD_CLIENT_SECRET),
            metadata=admin, timeout=10)
        self.issuer_client = ("stp-hcm-registry", answer.client_secret)

    def citizen_token(self, national_id: str, audience: str = "dvc-wallet") -> str:
        """A citizen's login done the way a browser does it, without the HTML (for setting up other wallets)."""
        started = self.identity_stub.StartLogin(idpb.StartLoginRequest(
            provider_id="vneid", redirect_uri="http://127.0.0.1:9/callback", audience=audience), timeout=10)
        parsed = urlparse(started.authorization_url)
        params = {key: values[0] for key, values in parse_qs(parsed.query).items()}
        answer = requests.post(f"{parsed.scheme}://{parsed.netloc}{parsed.path}",
                               data={**params, "account": national_id}, allow_redirects=False, timeout=10)
        query = parse_qs(urlparse(answer.headers["Location"]).query)
        done = self.identity_stub.CompleteLogin(idpb.CompleteLoginRequest(state=query["state"][0],
                                                                           code=query["code"][0]), timeout=10)
        return str(done.tokens.access_token)

    # --- the agencies' systems --------------------------------------------------------------------------------

    def issue_birth_certificate(self, citizen: tuple[str, str]) -> tuple[walletpb.Document, bytes]:
        """The justice department issues a signed birth certificate into the citizen's wallet."""
        key = dev_issuer_keys()[JUSTICE]
        content = PDF_HEAD + f"% birth certificate of {citizen[0]} {uuid.uuid4().hex}\n".encode()
        metadata = {"full_name": citizen[1], "date_of_birth": "1985-04-12", "sex": "Nam",
                    "place_of_birth": "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh", "registration_number": "112/1985",
                    "registered_on": "1985-04-20"}
        manifest = manifest_bytes(citizen_id=citizen[0], content_sha256=hashlib.sha256(content).hexdigest(),
                                  document_type="BIRTH_CERT", issuer_agency=JUSTICE, metadata=metadata,
                                  valid_from=None, valid_until=None, supersedes="")

        def messages() -> Iterator[walletpb.IssueDocumentRequest]:
            yield walletpb.IssueDocumentRequest(metadata=walletpb.IssueDocumentMetadata(
                citizen_id=citizen[0], type_code="BIRTH_CERT", metadata=metadata, issuer_key_id=key.key_id,
                signature=sign(key.private_key, manifest), idempotency_key=uuid.uuid4().hex))
            yield walletpb.IssueDocumentRequest(chunk=content)

        token = self.client_token(self.issuer_client, "dvc-wallet")
        answer = self.wallet_stub.IssueDocument(messages(), metadata=bearer(token), timeout=20)
        return answer.document, content

    def redeem(self, share_id: str) -> list[Any]:
        """The receiving agency (Ha Noi) takes the shared documents for its dossier."""
        token = self.client_token(RECEIVER_CLIENT, "dvc-wallet")
        return list(self.wallet_stub.RedeemShare(walletpb.RedeemShareRequest(
            share_id=share_id, delivery=walletpb.CONTENT_DELIVERY_STREAM), metadata=bearer(token), timeout=20))

    def create_payment(self, lines: list[tuple[int, str, int]], *, dossier: str,
                       expires_in: timedelta | None = None) -> paypb.Payment:
        """Ho Chi Minh City's dossier system asks the citizen to pay (kind, name, amount) fee lines."""
        token = self.client_token(PROVINCE_CLIENT, "dvc-payments")
        request = paypb.CreatePaymentRequest(
            idempotency_key=uuid.uuid4().hex, dossier_code=dossier, procedure_code="1.001612",
            payer=paypb.Payer(name=CITIZEN[1], national_id=CITIZEN[0]),
            fee_lines=[paypb.FeeLine(kind=kind, code=f"F{index}", name=name, amount=amount)
                       for index, (kind, name, amount) in enumerate(lines, start=1)],
            total_amount=sum(amount for _, _, amount in lines),
            beneficiary=paypb.BeneficiaryAccount(bank_bin="970405", account="7111000000001"),
            description="Cấp bản sao trích lục khai sinh")
        if expires_in is not None:
            request.expires_at.CopyFrom(stamp(self.payment_clock.now() + expires_in))
        return self.payment_stub.CreatePayment(request, metadata=bearer(token), timeout=10).payment

    def stop(self) -> None:
        for channel in self.channels:
            channel.close()
        for service in (self.payment, self.wallet, self.identity):
            service.stop(grace_seconds=0.5)
        for server in (self.agency_receiver, self.vneid):
            server.stop()
        self.sandboxes.stop()
        drop_bucket(make_client(self.s3["endpoint"], self.s3["access_key"], self.s3["secret_key"]), self.bucket)


def _agency_receiver() -> RunningHttp:
    """The province's callback endpoint: acknowledges every status callback (their checks are tested elsewhere)."""
    app = Flask("e2e-agency")
    app.add_url_rule("/dvc-callbacks", "receive", lambda: ("", 204), methods=["POST"])
    return start_http(app, name="e2e-agency")


def start_platform(workdir: Path, s3: dict[str, str]) -> Platform:
    started: list[Any] = []
    try:
        vneid = start_http(create_idp_sandbox("vneid"), name="e2e-vneid")
        started.append(vneid)
        providers = workdir / "providers.yaml"
        providers.write_text(providers_yaml(vneid.url), encoding="utf-8")
        identity = start_identity(IdentitySettings(database_url=fresh_postgres_url("e2e_identity"), metrics_port=-1,
                                                   providers_file=str(providers), log_level="WARNING"),
                                  PlatformSettings(jwt_issuer=ISSUER))
        started.append(identity)
        assert identity.http is not None and identity.grpc is not None
        platform = PlatformSettings(jwt_issuer=ISSUER, jwks_url=f"{identity.http.url}/jwks.json",
                                    revocations_url=f"{identity.http.url}/revocations.json")
        wallet_settings = WalletSettings(
            database_url=fresh_postgres_url("e2e_wallet"), s3_endpoint=s3["endpoint"], s3_access_key=s3["access_key"],
            s3_secret_key=s3["secret_key"], s3_bucket=f"e2e-wallet-{uuid.uuid4().hex[:10]}", metrics_port=-1,
            log_level="WARNING", grpc_port=free_port(), web_identity_target=f"127.0.0.1:{identity.grpc.port}")
        wallet = start(WALLET_SPEC, wallet_settings, platform)
        started.append(wallet)
        receiver = _agency_receiver()
        started.append(receiver)
        # The sandboxes need the payment edge's callback address before it starts, so its port is chosen first.
        payment_port = free_port()
        base = f"http://127.0.0.1:{payment_port}"
        sandboxes = start_all(ports=dict.fromkeys(BANK_SANDBOXES, 0), only=BANK_SANDBOXES,
                              notify_url_base=f"{base}/callbacks", settings={"retry_backoff_seconds": 0.2})
        started.append(sandboxes)
        ports = {code: server.port for code, server in sandboxes.servers.items()}
        registry = ConnectorRegistry.from_config(
            {code: entry for code, entry in default_sandbox_config(ports=ports, return_url=f"{base}/pay/return",
                                                                   timeout_seconds=5).items() if code in ports},
            callback_base_url=f"{base}/callbacks")
        payment_settings = dataclasses.replace(
            settings_for(fresh_postgres_url("e2e_payment"), public_base_url=base,
                         demo_callback_url=f"{receiver.url}/dvc-callbacks", expiry_interval_seconds=1.0,
                         log_level="WARNING", wallet_addr=f"127.0.0.1:{wallet_settings.grpc_port}",
                         identity_addr=f"127.0.0.1:{identity.grpc.port}", wallet_client_id=PAYMENT_CLIENT[0],
                         wallet_client_secret=PAYMENT_CLIENT[1]), http_port=payment_port)
        clock = ShiftedClock()
        payment = start(make_spec(Overrides(connectors=registry, seed=True, clock=clock)), payment_settings, platform)
        started.append(payment)
        running = Platform(vneid, identity, wallet, payment, sandboxes, receiver, s3, wallet_settings.s3_bucket, clock)
        running.register_issuer_client()
        return running
    except BaseException:
        for item in reversed(started):
            item.stop()
        raise


def log_in(page: Any, platform: Platform, who: tuple[str, str]) -> None:
    page.goto(f"{platform.wallet_url}/")
    page.get_by_role("link", name="Đăng nhập bằng VNeID").click()
    # The sandbox VNeID's own login page, on its own origin.
    expect(page).to_have_url(re.compile(re.escape(platform.vneid.url) + "/authorize"))
    page.get_by_role("button", name=f"{who[1]} ({who[0]})").click()
    expect(page).to_have_url(f"{platform.wallet_url}/wallet/")


def screenshot(page: Any, name: str, *, full_page: bool = True) -> Path:
    """Keep a picture of the page as a test artefact (artifacts/screenshots/<name>.png)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
