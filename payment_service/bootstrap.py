"""Wiring of the payment service: settings, real adapters by default (tests pass fakes), the process spec."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import Engine

from payment_service.adapters import qr_png
from payment_service.adapters.http_sender import RequestsCallbackSender
from payment_service.adapters.receipts import (
    ClientCredentialsTokenSource,
    Ed25519Signer,
    WalletReceiptIssuer,
)
from payment_service.adapters.repository import SqlUnitOfWork
from payment_service.adapters.workers import LoopWorker, WakeUp
from payment_service.domain.model import Agency, BeneficiaryAccount, CallbackSecret, ChannelChoice
from payment_service.entrypoints.grpc_servicer import PUBLIC_METHODS, PaymentServicer, registration
from payment_service.entrypoints.http import callbacks_blueprint_or_none, create_app
from payment_service.entrypoints.pages import mount_payment_pages
from payment_service.service_layer.outbox import Dispatcher, DispatchPolicy
from payment_service.service_layer.ports import (
    Availability,
    CallbackSender,
    Clock,
    ConnectorLookup,
    ReceiptIssuer,
    SignedReceipt,
)
from payment_service.service_layer.qr_images import QrImages
from payment_service.service_layer.reporting import Reporting
from payment_service.service_layer.services import PaymentServices, ServiceConfig, SystemClock
from servicekit.auth import TokenVerifier
from servicekit.config import PlatformSettings, ServiceSettings
from servicekit.db import session_factory
from servicekit.process import Components, ServiceSpec
from servicekit.settings import StartupError, env_name, is_production, setting

log = logging.getLogger("dvc.payments")

NAME = "payment"
PREFIX = "PAYMENT"
AUDIENCE = "dvc-payments"
MIGRATIONS = Path(__file__).resolve().parent / "adapters" / "migrations"
# The published secret of identity's development client "dvc-payment-service" (identity_service/devseed.py).
DEV_WALLET_CLIENT_SECRET = "dev-secret-dvc-payment-service-0004"


@dataclass(frozen=True)
class PaymentSettings(ServiceSettings):
    """Settings of the payment service (PAYMENT_*); every one has a default that works with zero configuration."""

    environment: str = setting("development", "development or production; production turns off the demo seed and "
                                              "requires the connectors file, the receipt key and wallet credentials")
    public_base_url: str = setting("http://127.0.0.1:8082", "public address of the HTTP edge (QR images, channel "
                                                            "pages, connector callbacks)")
    connectors_file: str = setting("", "YAML file with a top-level 'connectors:' mapping of code to settings; "
                                       "empty uses the embedded default pointing at the local sandboxes")
    callback_timeout_seconds: float = setting(10.0, "timeout of each agency callback POST (at most 10)")
    dispatcher_parallelism: int = setting(8, "agency callbacks delivered in parallel by one dispatcher")
    expiry_interval_seconds: float = setting(15.0, "how often unpaid payments past their expiry are expired")
    sweep_interval_seconds: float = setting(30.0, "how often PENDING payments are checked with their connector")
    status_check_after_seconds: float = setting(120.0, "a PENDING payment is queried when quiet this long")
    receipt_key_file: str = setting("", "Ed25519 private key (PEM PKCS#8) that signs e-receipts; empty uses the "
                                        "wallet's public development key of the issuer agency (development only)")
    receipt_key_id: str = setting("dvc-payments-receipts", "key id of the receipt key, as registered at the wallet")
    receipt_issuer_agency: str = setting("DVC-PAYMENTS", "issuer agency code of receipts in the wallet (the "
                                                         "agency claim of the payment service's client token; its "
                                                         "key is registered at the wallet as FEE_COLLECTOR)")
    receipt_document_type: str = setting("FEE_RECEIPT", "wallet document type code of e-receipts")
    wallet_addr: str = setting("", "wallet gRPC address host:port; empty keeps receipts in the payment database "
                                     "only (development)")
    identity_addr: str = setting("127.0.0.1:7051", "identity gRPC address, for client-credentials tokens")
    wallet_client_id: str = setting("dvc-payment-service", "client id of the payment service at identity (scope "
                                                           "wallet.issue)")
    wallet_client_secret: str = setting("", "client secret of the payment service at identity; empty in development "
                                            "uses identity's published demo secret", secret=True)
    demo_callback_url: str = setting("http://127.0.0.1:8090/dvc-callbacks", "callback URL of the seeded demo "
                                                                            "agencies (development only)")
    demo_callback_secret: str = setting("dev-callback-secret-change-me", "callback secret of the seeded demo "
                                                                         "agencies (development only)", secret=True)

    @property
    def production(self) -> bool:
        return is_production(self.environment, env_name(PREFIX, "environment"))


class HeldReceiptIssuer:
    """Development stand-in when no wallet is configured: the signed receipt stays in the payment database."""

    def issue(self, receipt: SignedReceipt) -> str:
        log.info("receipt kept locally (no wallet configured)", extra={"receipt": receipt.number})
        return ""


def check_dependencies(settings: PaymentSettings) -> None:
    """Refuse production start-up without the receipt key or wallet credentials."""
    if settings.callback_timeout_seconds <= 0 or settings.callback_timeout_seconds > 10:
        raise StartupError(env_name(PREFIX, "callback_timeout_seconds"), "must be more than 0 and at most 10")
    if not settings.production:
        return
    if not settings.connectors_file:
        raise StartupError(env_name(PREFIX, "connectors_file"), "production needs its own connector configuration: "
                           "the embedded sandbox credentials are public, anyone could sign callbacks with them")
    if not settings.receipt_key_file:
        raise StartupError(env_name(PREFIX, "receipt_key_file"), "production needs the receipt signing key")
    if not settings.wallet_addr or not settings.wallet_client_id or not settings.wallet_client_secret:
        raise StartupError(env_name(PREFIX, "wallet_addr"), "production issues receipts into the wallet: set "
                           "PAYMENT_WALLET_ADDR, PAYMENT_WALLET_CLIENT_ID and PAYMENT_WALLET_CLIENT_SECRET")


def load_connectors(settings: PaymentSettings) -> Any:
    """The connector registry (each connector behind its circuit breaker), credentials checked now."""
    from payment_service.adapters.connector_registry import ConnectorRegistry, default_sandbox_config

    name = env_name(PREFIX, "connectors_file")
    callbacks = f"{settings.public_base_url.rstrip('/')}/callbacks"
    if not settings.connectors_file:
        return ConnectorRegistry.from_config(default_sandbox_config(), callback_base_url=callbacks)
    try:
        document = yaml.safe_load(Path(settings.connectors_file).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise StartupError(name, f"cannot read the connector configuration: {exc}") from None
    config = document.get("connectors") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise StartupError(name, "the file needs a top-level 'connectors:' mapping of code to settings")
    return ConnectorRegistry.from_config(config, callback_base_url=callbacks)


# Demo tenants for `make run`: HCM collects into State Treasury accounts at Agribank and VietinBank.
DEMO_AGENCIES = (
    ("HCM", "UBND TP. Hồ Chí Minh - Cổng DVC", (("970405", "7111000000001", "KBNN TP Ho Chi Minh"),
                                                ("970415", "7111000000002", "KBNN TP Ho Chi Minh"))),
    ("HN", "UBND TP. Hà Nội - Cổng DVC", (("970405", "7111000000101", "KBNN Ha Noi"),)),
)


def seed_demo_agencies(services: PaymentServices, settings: PaymentSettings, connector_codes: list[str]) -> None:
    """Register the demo agencies once (development only), with the configured demo callback secret."""
    now = services.clock.now()
    channels = [ChannelChoice(code, priority) for priority, code in enumerate(connector_codes, start=1)]
    with services.uow_factory() as uow:
        for code, name, accounts in DEMO_AGENCIES:
            if uow.agencies.get(code, with_secrets=False) is not None:
                continue
            agency = Agency(code=code, name=name, callback_url=settings.demo_callback_url,
                            accounts=[BeneficiaryAccount(*account) for account in accounts], channels=channels,
                            secrets=[CallbackSecret(f"demo-{code.lower()}", settings.demo_callback_secret, now)],
                            created_at=now, updated_at=now)
            uow.agencies.add(agency, "demo-seed")
        uow.commit()


@dataclass
class Overrides:
    """Ports tests and benchmarks replace; None means the real adapter."""

    connectors: ConnectorLookup | None = None
    availability: Availability | None = None
    sender: CallbackSender | None = None
    issuer: ReceiptIssuer | None = None
    clock: Clock | None = None
    signer: Ed25519Signer | None = None
    dispatch_policy: DispatchPolicy | None = None
    seed: bool | None = None
    workers: bool = True
    on_built: Callable[[PaymentServices], None] | None = None


def _signer(settings: PaymentSettings) -> Ed25519Signer:
    if settings.receipt_key_file:
        return Ed25519Signer.from_pem_file(settings.receipt_key_file, settings.receipt_key_id,
                                           env_name(PREFIX, "receipt_key_file"))
    log.warning("receipts are signed with the public development key; set PAYMENT_RECEIPT_KEY_FILE outside "
                "development")
    return Ed25519Signer.development(settings.receipt_issuer_agency)


def _issuer(settings: PaymentSettings, signer: Ed25519Signer, on_stop: list[Callable[[], None]]) -> ReceiptIssuer:
    if not settings.wallet_addr:
        return HeldReceiptIssuer()
    # check_dependencies refuses production without a real secret; development uses identity's demo client.
    secret = settings.wallet_client_secret or DEV_WALLET_CLIENT_SECRET
    tokens = ClientCredentialsTokenSource(settings.identity_addr, settings.wallet_client_id, secret)
    issuer = WalletReceiptIssuer(settings.wallet_addr, tokens, signer, issuer_agency=settings.receipt_issuer_agency,
                                 document_type=settings.receipt_document_type)
    on_stop.extend([issuer.close, tokens.close])
    return issuer


def build(settings: PaymentSettings, platform: PlatformSettings, engine: Engine, verifier: TokenVerifier | None,
          overrides: Overrides | None = None) -> Components:
    """Wire the service: repositories on ``engine``, connectors, dispatcher and jobs, gRPC servicer, HTTP edge."""
    chosen = overrides or Overrides()
    on_stop: list[Callable[[], None]] = []
    registry = chosen.connectors if chosen.connectors is not None else load_connectors(settings)
    availability = chosen.availability or registry  # the registry answers from its circuit breakers
    signer = chosen.signer or _signer(settings)
    clock = chosen.clock or SystemClock()
    sessions = session_factory(engine)
    wake = WakeUp()
    services = PaymentServices(
        lambda: SqlUnitOfWork(sessions), clock=clock, connectors=registry, signer=signer,
        availability=availability, notifier=wake,  # type: ignore[arg-type]
        config=ServiceConfig(public_base_url=settings.public_base_url,
                             status_check_after=timedelta(seconds=settings.status_check_after_seconds)))
    if chosen.seed if chosen.seed is not None else not settings.production:
        seed_demo_agencies(services, settings, registry.codes())
    reporting = Reporting(services)
    qr_images = QrImages(services.uow_factory, qr_png.render_png, qr_png.render_svg)
    sender = chosen.sender or RequestsCallbackSender()
    issuer = chosen.issuer or _issuer(settings, signer, on_stop)
    policy = chosen.dispatch_policy or DispatchPolicy(timeout_seconds=settings.callback_timeout_seconds,
                                                      parallelism=settings.dispatcher_parallelism)
    dispatcher = Dispatcher(services.uow_factory, clock, sender, issuer, policy)
    on_stop.append(dispatcher.close)
    workers = [
        LoopWorker("payment-outbox", dispatcher.run_once, 1.0, wake),
        LoopWorker("payment-expiry", services.expire_due, settings.expiry_interval_seconds),
        LoopWorker("payment-sweep", services.sweep_pending, settings.sweep_interval_seconds),
    ] if chosen.workers else []

    callbacks = callbacks_blueprint_or_none(registry, services.handle_notification, services.refresh_status)
    http_app = create_app(services, qr_images, callbacks=callbacks)
    mount_payment_pages(http_app, services)  # /pay/<reference> for payers and the integrators' /docs/
    servicer = PaymentServicer(services, reporting, qr_images, wake, max_watchers=max(settings.grpc_workers // 4, 1))
    if chosen.on_built is not None:
        chosen.on_built(services)
    return Components(registrations=[registration(servicer)], http_app=http_app, workers=list(workers),
                      public_methods=PUBLIC_METHODS, on_stop=on_stop)


def make_spec(overrides: Overrides | None = None) -> ServiceSpec:
    """The process spec; tests pass ``overrides`` to run the real service with fake ports."""
    return ServiceSpec(name=NAME, prefix=PREFIX, audience=AUDIENCE, settings_cls=PaymentSettings,
                       migrations_dir=MIGRATIONS,
                       build=lambda s, p, e, v: build(s, p, e, v, overrides),
                       check_dependencies=check_dependencies)


SPEC = make_spec()


def settings_for(database_url: str, **changes: Any) -> PaymentSettings:
    """Settings for an in-process run (tests, benchmarks): ports 0, metrics off, the given database."""
    return dataclasses.replace(PaymentSettings(), database_url=database_url, grpc_port=0, http_port=0,
                               metrics_port=-1, **changes)

