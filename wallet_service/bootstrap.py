"""Wiring of the wallet service: settings, real adapters by default, the dev issuer keys, and its ServiceSpec."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import yaml
from flask import Flask
from minio import Minio
from sqlalchemy.engine import Engine

from servicekit.auth import TokenVerifier
from servicekit.config import PlatformSettings, ServiceSettings
from servicekit.db import session_factory
from servicekit.errors import Conflict, DomainError
from servicekit.process import Components, ServiceSpec
from servicekit.s3 import ensure_bucket, make_client
from servicekit.settings import StartupError, env_name, is_production, setting
from servicekit.web.settings import WebSettings
from wallet_service.adapters.object_storage import MinioObjectStorage
from wallet_service.adapters.repository import SqlWalletUnitOfWork
from wallet_service.domain.catalogue import type_from_mapping
from wallet_service.domain.manifest import PrivateKey, public_pem
from wallet_service.domain.model import DocumentType, SignatureAlgorithm
from wallet_service.entrypoints.grpc_servicer import PUBLIC_METHODS, wallet_registration
from wallet_service.entrypoints.pages import mount_wallet_pages
from wallet_service.service_layer.handlers import WalletHandlers
from wallet_service.service_layer.ports import ObjectStorage

log = logging.getLogger("dvc.wallet")

PREFIX = "WALLET"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "adapters" / "migrations"
SEED_CATALOGUE = Path(__file__).resolve().parent / "document_types.yaml"


@dataclass(frozen=True)
class WalletSettings(WebSettings, ServiceSettings):
    """The wallet's settings (prefix WALLET_); defaults match `make run`."""

    grpc_workers: int = setting(6, "gRPC server worker threads; fewer than the platform's 12 because every "
                                   "wallet RPC blocks on PostgreSQL and S3 several times, and each block hands the "
                                   "interpreter lock to another worker (12 -> 6 took streamed RedeemShare from "
                                   "~305 to ~360/s, with ~40 % fewer context switches per redeem)")
    s3_endpoint: str = setting("127.0.0.1:17303", "S3 endpoint (host:port) holding document content")
    s3_access_key: str = setting("dvc-local-access", "S3 access key", secret=True)
    s3_secret_key: str = setting("dvc-local-secret-key", "S3 secret key", secret=True)
    s3_bucket: str = setting("dvc-wallet", "bucket for document content (created at start-up if missing)")
    s3_secure: bool = setting(False, "use HTTPS to reach S3")
    s3_timeout_seconds: float = setting(10.0, "connect/read timeout of every S3 call")
    environment: str = setting("development", "development or production; production refuses the dev issuer keys")
    dev_issuer_keys: str = setting("auto", "register the sandbox issuing agencies' keys at start-up: auto (only in "
                                           "development), true, or false; true in production stops start-up")
    document_types_file: str = setting("", "YAML file of extra document types (same shape as "
                                           "wallet_service/document_types.yaml); its types override the seed")
    presigned_url_seconds: int = setting(300, "lifetime of presigned download URLs (at most 300)")
    orphan_sweep_seconds: float = setting(600.0, "how often content objects no document references are swept")
    orphan_grace_seconds: float = setting(900.0, "age before an unreferenced object counts as an orphan "
                                                 "(younger ones may belong to an upload in flight)")

    @property
    def production(self) -> bool:
        return is_production(self.environment, env_name(PREFIX, "environment"))


# --- dev issuer keys -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DevIssuerKey:
    """A sandbox issuing agency and its signing key (demos, tests, load tests; never production)."""

    agency_code: str
    agency_kind: str
    key_id: str
    algorithm: SignatureAlgorithm
    private_key: PrivateKey

    @property
    def public_key_pem(self) -> str:
        return public_pem(self.private_key)


# (agency code, agency kind, algorithm): one sandbox issuer per seeded document type's kind, plus the payment
# platform, which issues fee e-receipts.
DEV_ISSUERS = (
    ("UBND-PHUONG-BEN-NGHE", "COMMUNE_PEOPLES_COMMITTEE", SignatureAlgorithm.ED25519),
    ("STP-HCM", "JUSTICE_DEPARTMENT", SignatureAlgorithm.ES256),
    ("TTLLTP-QG", "NATIONAL_JUDICIAL_RECORDS_CENTRE", SignatureAlgorithm.ED25519),
    ("CA-HCM", "POLICE", SignatureAlgorithm.ES256),
    ("SGTVT-HCM", "TRANSPORT_DEPARTMENT", SignatureAlgorithm.ED25519),
    ("VPDKDD-HCM", "LAND_REGISTRATION_OFFICE", SignatureAlgorithm.ED25519),
    ("PDKKD-HCM", "BUSINESS_REGISTRATION_OFFICE", SignatureAlgorithm.ED25519),
    ("DVC-PAYMENTS", "FEE_COLLECTOR", SignatureAlgorithm.ED25519),
)


def _dev_private_key(agency_code: str, algorithm: SignatureAlgorithm) -> PrivateKey:
    # Derived from the agency code so every process (service, demo, load test) holds the same key
    # without sharing files; that is exactly why they must never be trusted outside development.
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    seed = hashlib.sha256(f"dvc-dev-issuer-key:{agency_code}".encode()).digest()
    if algorithm is SignatureAlgorithm.ED25519:
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    return ec.derive_private_key(int.from_bytes(seed, "big") % (order - 1) + 1, ec.SECP256R1())


def dev_issuer_keys() -> dict[str, DevIssuerKey]:
    """The sandbox issuing agencies' keys by agency code, with their private keys (for signing manifests in
    demos, tests and load tests). The service registers the public halves at start-up in development only."""
    return {code: DevIssuerKey(agency_code=code, agency_kind=kind, key_id=f"dev-{code.lower()}-1",
                               algorithm=algorithm, private_key=_dev_private_key(code, algorithm))
            for code, kind, algorithm in DEV_ISSUERS}


def _seeds_dev_keys(settings: WalletSettings) -> bool:
    choice = settings.dev_issuer_keys.strip().lower()
    production = settings.production
    if choice not in ("auto", "true", "false"):
        raise StartupError(env_name(PREFIX, "dev_issuer_keys"), f"expected auto, true or false, got {choice!r}")
    if choice == "true" and production:
        raise StartupError(env_name(PREFIX, "dev_issuer_keys"),
                           "the dev issuer keys are public knowledge and are refused in production")
    return choice == "true" or (choice == "auto" and not production)


# --- catalogue -------------------------------------------------------------------------------------------------


def load_catalogue(extra_file: str = "") -> list[DocumentType]:
    """The seed catalogue plus the configured file's types (a type in the file replaces the seed's)."""
    types = {item.code: item for item in _read_types(SEED_CATALOGUE, "")}
    if extra_file:
        types.update({item.code: item for item in _read_types(Path(extra_file),
                                                              env_name(PREFIX, "document_types_file"))})
    return list(types.values())


def _read_types(path: Path, setting_name: str) -> list[DocumentType]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        entries = document.get("document_types", [])
        if not isinstance(entries, list):
            raise ValueError("document_types must be a list")
        return [type_from_mapping(entry) for entry in entries]
    except (OSError, yaml.YAMLError, ValueError, AttributeError, DomainError) as exc:
        raise StartupError(setting_name or str(path), f"cannot load document types from {path}: {exc}") from None


# --- wiring ----------------------------------------------------------------------------------------------------


def s3_client(settings: WalletSettings) -> Minio:
    return make_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key,
                       secure=settings.s3_secure, timeout_seconds=settings.s3_timeout_seconds)


def check_dependencies(settings: WalletSettings) -> None:
    """Start-up: the bucket must be reachable with the configured credentials, and the key choice sane."""
    _seeds_dev_keys(settings)
    if settings.document_types_file:
        load_catalogue(settings.document_types_file)
    ensure_bucket(s3_client(settings), settings.s3_bucket, endpoint_setting=env_name(PREFIX, "s3_endpoint"),
                  credentials_setting=env_name(PREFIX, "s3_secret_key"))


class OrphanSweeper:
    """Removes, now and then, content objects a crash left between the put and the commit."""

    def __init__(self, handlers: WalletHandlers, every_seconds: float, grace_seconds: float) -> None:
        self._handlers = handlers
        self._every = every_seconds
        self._grace = timedelta(seconds=grace_seconds)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wallet-orphan-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._every):
            try:
                removed = self._handlers.sweep_orphans(self._grace)
                if removed:
                    log.info("orphan content removed", extra={"objects": removed})
            except Exception:  # the next round tries again; one bad round must not end the loop
                log.exception("orphan sweep failed")

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def build_handlers(settings: WalletSettings, engine: Engine, storage: ObjectStorage) -> WalletHandlers:
    sessions = session_factory(engine)
    handlers = WalletHandlers(lambda: SqlWalletUnitOfWork(sessions), storage,
                              presigned_url_seconds=settings.presigned_url_seconds)
    catalogue = load_catalogue(settings.document_types_file)
    _despite_other_replicas(lambda: handlers.load_document_types(catalogue))
    if _seeds_dev_keys(settings):
        for key in dev_issuer_keys().values():
            _despite_other_replicas(partial(handlers.store_issuer_key, key_id=key.key_id,
                                            agency_code=key.agency_code, agency_kind=key.agency_kind,
                                            algorithm=key.algorithm, public_key_pem=key.public_key_pem))
    return handlers


def _despite_other_replicas(seed: Callable[[], object], attempts: int = 3) -> None:
    """Run a start-up seed; replicas starting together race to insert the same rows, and the loser's retry
    then finds them in place."""
    for attempt in range(attempts):
        try:
            seed()
            return
        except Conflict:
            if attempt == attempts - 1:
                raise


def build(settings: WalletSettings, platform: PlatformSettings, engine: Engine, verifier: TokenVerifier | None,
          storage: ObjectStorage | None = None) -> Components:
    """The wallet's components on real adapters (tests may pass another ``storage``)."""
    if storage is None:
        storage = MinioObjectStorage(s3_client(settings), settings.s3_bucket,
                                     timeout_seconds=settings.s3_timeout_seconds)
    handlers = build_handlers(settings, engine, storage)

    app = Flask("wallet_service")   # the citizen's pages mount on it; servicekit adds the probes

    def mount_pages() -> Callable[[], None] | None:
        """The citizen's pages, over this service's own gRPC API."""
        pages = mount_wallet_pages(app, settings, engine, production=settings.production)
        return pages.close if pages else None

    sweeper = OrphanSweeper(handlers, settings.orphan_sweep_seconds, settings.orphan_grace_seconds)
    return Components(registrations=[wallet_registration(handlers)], http_app=app, workers=[sweeper],
                      public_methods=PUBLIC_METHODS, http_mounts=[mount_pages],
                      readiness_checks={"object_storage": storage.check})


def _build(settings: Any, platform: PlatformSettings, engine: Engine, verifier: TokenVerifier | None) -> Components:
    return build(settings, platform, engine, verifier)


SPEC = ServiceSpec(name="wallet", prefix=PREFIX, audience="dvc-wallet", settings_cls=WalletSettings,
                   migrations_dir=MIGRATIONS_DIR, build=_build, check_dependencies=check_dependencies)
