"""Wiring of the identity service: real adapters, the servicer, the HTTP edge, the sweeper; SPEC for
servicekit.process, the in-process starter tests use, and the development credentials."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from identity_service import config
from identity_service.adapters.crypto import KeyDecryptionError, KeyEncryptor
from identity_service.adapters.keyring import DatabaseRevocations, Keyring, KeyringJwks, lookup_engine
from identity_service.adapters.oidc import UpstreamClient
from identity_service.adapters.provider_file import ProviderFileError, load_providers
from identity_service.config import IdentitySettings
from identity_service.devseed import DEV_CLIENTS, seed_dev_clients
from identity_service.domain.scopes import AUDIENCE_IDENTITY
from identity_service.entrypoints.grpc_servicer import PUBLIC_METHODS, registration
from identity_service.entrypoints.http import create_app
from identity_service.service_layer.handlers import IdentityHandlers, TokenPolicy
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit import auth
from servicekit.config import PlatformSettings
from servicekit.db import session_factory
from servicekit.process import Components, RunningService, ServiceSpec, start
from servicekit.settings import StartupError, env_name

MIGRATIONS = Path(__file__).resolve().parent / "adapters" / "migrations"
SWEEP_SECONDS = 60.0
log = logging.getLogger("dvc.identity")


class Sweeper:
    """Drops expired deny-list entries, assertion ids and abandoned logins once a minute."""

    def __init__(self, handlers: IdentityHandlers, interval: float = SWEEP_SECONDS) -> None:
        self._handlers = handlers
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="identity-sweeper", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._handlers.purge_expired()
            except Exception:
                log.exception("sweep failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def policy_for(settings: IdentitySettings, platform: PlatformSettings) -> TokenPolicy:
    issuer = platform.jwt_issuer.rstrip("/")
    return TokenPolicy(
        issuer=issuer, access_token_seconds=settings.access_token_seconds,
        refresh_token_seconds=settings.refresh_token_seconds, session_max_seconds=settings.session_max_seconds,
        login_session_seconds=settings.login_session_seconds,
        default_redirect_uri=settings.login_redirect_uri or f"{issuer}/login/callback",
        allowed_redirect_uris=tuple(settings.allowed_redirect_uris), leeway_seconds=platform.jwt_leeway_seconds,
        jwks_max_age_seconds=settings.jwks_max_age_seconds)


def build_handlers(settings: IdentitySettings, platform: PlatformSettings, engine: Engine,
                   revocations: DatabaseRevocations) -> IdentityHandlers:
    """The handlers over the real adapters, with a usable signing key and the providers file loaded."""
    config.check(settings)
    sessions = session_factory(engine)
    encryptor = KeyEncryptor(settings.key_encryption_key)
    keyring = Keyring(sessions, encryptor)
    keyring.ensure_signing_key()
    try:
        keyring.signing_key()
    except KeyDecryptionError:
        raise StartupError(env_name(config.PREFIX, "key_encryption_key"),
                           "it does not open the signing keys stored in the database") from None
    upstream = UpstreamClient(timeout_seconds=settings.upstream_timeout_seconds,
                              leeway_seconds=platform.jwt_leeway_seconds,
                              jwks_min_refetch_seconds=platform.jwks_min_refetch_seconds)
    handlers = IdentityHandlers(lambda: IdentityUnitOfWork(sessions), keyring, upstream, encryptor,
                                policy_for(settings, platform), revocations)
    try:
        providers = load_providers(settings.providers_file)
    except ProviderFileError as error:
        raise StartupError(env_name(config.PREFIX, "providers_file"), str(error)) from None
    handlers.sync_providers_file(providers)
    if settings.environment == config.DEVELOPMENT and settings.seed_dev_clients:
        seed_dev_clients(IdentityUnitOfWork(sessions), settings.environment)
    return handlers


def build(settings: IdentitySettings, platform: PlatformSettings, engine: Engine,
          verifier: auth.TokenVerifier | None) -> Components:
    lookups = lookup_engine(settings.database_url, settings.grpc_workers // 2 or 1)
    revocations = DatabaseRevocations(lookups)
    handlers = build_handlers(settings, platform, engine, revocations)
    return Components(registrations=[registration(handlers)],
                      http_app=create_app(handlers, login_redirect_uri=settings.login_redirect_uri),
                      workers=[Sweeper(handlers)], public_methods=PUBLIC_METHODS,
                      on_stop=[revocations.close, lookups.dispose])


SPEC = ServiceSpec(name="identity", prefix=config.PREFIX, audience=AUDIENCE_IDENTITY, settings_cls=IdentitySettings,
                   migrations_dir=MIGRATIONS, build=build, check_dependencies=config.check)


def local_verifier(engine: Engine, settings: IdentitySettings, platform: PlatformSettings,
                   revocations: DatabaseRevocations) -> auth.TokenVerifier:
    """servicekit's verifier for identity's own RPCs, reading keys and the deny-list from the database instead of
    over HTTP (so a key rotated or a token revoked a moment ago is seen at once)."""
    keyring = Keyring(session_factory(engine), KeyEncryptor(settings.key_encryption_key))
    return auth.TokenVerifier(KeyringJwks(keyring), issuer=platform.jwt_issuer.rstrip("/"),
                              audience=AUDIENCE_IDENTITY, leeway_seconds=platform.jwt_leeway_seconds,
                              revocations=revocations)


def start_identity(settings: IdentitySettings, platform: PlatformSettings, **parts: Any) -> RunningService:
    """Start the real service in this process (tests, benchmarks) with the local verifier."""
    engine = lookup_engine(settings.database_url, 4)
    revocations = DatabaseRevocations(engine, keep=4)
    running = start(SPEC, settings, platform, verifier=local_verifier(engine, settings, platform, revocations),
                    **parts)
    running.components.on_stop.extend([revocations.close, engine.dispose])
    return running


def handlers_of(running: RunningService) -> IdentityHandlers:
    """The handlers behind a running service (in-process callers such as benchmarks)."""
    handlers: IdentityHandlers = running.components.registrations[0].servicer.handlers
    return handlers


def dev_credentials() -> list[dict[str, Any]]:
    """The demo machine clients seeded in development, with their fixed secrets (for `make run` to print).
    Get a token with IssueClientToken(client_id, client_secret, audience) or POST /token."""
    return [{"client_id": dev.client_id, "client_secret": dev.client_secret, "agency": dev.agency,
             "scopes": list(dev.scopes), "display_name": dev.display_name} for dev in DEV_CLIENTS]


def describe_dev_credentials() -> str:
    """dev_credentials() as lines a person can read."""
    lines = ["Development machine clients (client_secret auth; DEVELOPMENT ONLY):"]
    for entry in dev_credentials():
        lines.append(f"  {entry['client_id']:<22} secret {entry['client_secret']:<38} agency {entry['agency']:<4} "
                     f"scopes {' '.join(entry['scopes'])}")
    return "\n".join(lines)
