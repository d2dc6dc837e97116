"""The citizen's wallet pages on the wallet's HTTP edge: VNeID login through identity, then documents, shares and
the access log, all read and changed through the wallet's own gRPC API with the citizen's token."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy.engine import Engine

from servicekit.settings import StartupError, env_name
from servicekit.web import site
from servicekit.web.login import GrpcIdentity, IdentityPort, LoginSettings, login_blueprint
from servicekit.web.sessions import SessionStore
from servicekit.web.settings import COOKIE_SECURE_CHOICES, WebSettings
from servicekit.web.sql_sessions import SessionCipher, SqlSessionStore
from wallet_service.entrypoints.pages.client import GrpcWallet, WalletPort
from wallet_service.entrypoints.pages.messages import VI
from wallet_service.entrypoints.pages.views import wallet_blueprint

log = logging.getLogger("dvc.wallet.pages")

AUDIENCE = "dvc-wallet"
PREFIX = "WALLET"


@dataclass
class MountedPages:
    """What the mount made; ``close`` releases its gRPC channels (call it when the service stops)."""

    wallet: WalletPort
    identity: IdentityPort
    sessions: SessionStore
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for closer in self.closers:
            closer()


def install(app: Flask, wallet: WalletPort, identity: IdentityPort, *, sessions: SessionStore,
            cookie_secure: str = "auto", provider: str = "vneid", public_url: str = "") -> None:
    """Put the pages on ``app`` over the given ports (tests pass fakes)."""
    site.init_web(app, translations=[VI], sessions=sessions, cookie_secure=cookie_secure)
    app.register_blueprint(login_blueprint(LoginSettings(identity=identity, audience=AUDIENCE, provider=provider,
                                                         home="/wallet/", public_url=public_url)))
    app.register_blueprint(wallet_blueprint(wallet))


def wallet_target(settings: Any) -> str:
    """The wallet gRPC address the pages call: the configured one, or this process's fixed port."""
    if settings.web_grpc_target:
        return str(settings.web_grpc_target)
    if settings.grpc_port:
        return f"127.0.0.1:{settings.grpc_port}"
    return ""


def session_cipher(settings: WebSettings, production: bool) -> SessionCipher:
    """The key(s) sealing web sessions; production must name its own, never the public development key."""
    name = env_name(PREFIX, "web_session_keys")
    if production and not settings.web_session_keys.strip():
        raise StartupError(name, "production needs its own session keys (Fernet.generate_key()); the development "
                                 "key is public")
    try:
        return SessionCipher.from_setting(settings.web_session_keys)
    except ValueError as exc:
        raise StartupError(name, str(exc)) from None


def mount_wallet_pages(app: Flask, settings: WebSettings, engine: Engine, *,
                       production: bool = False) -> MountedPages | None:
    """Mount the pages from the service's settings; without a known wallet address (gRPC port 0 and no
    web_grpc_target, as in tests of the API alone) the edge serves no pages and says so once."""
    if settings.web_cookie_secure not in COOKIE_SECURE_CHOICES:
        raise StartupError(env_name(PREFIX, "web_cookie_secure"),
                           f"expected {', '.join(COOKIE_SECURE_CHOICES)}, got {settings.web_cookie_secure!r}")
    target = wallet_target(settings)
    if not target:
        log.warning("wallet pages not mounted: set WALLET_GRPC_PORT or WALLET_WEB_GRPC_TARGET so they can reach "
                    "the wallet API")
        return None
    wallet = GrpcWallet(target, timeout_seconds=settings.web_rpc_timeout_seconds)
    identity = GrpcIdentity(settings.web_identity_target, timeout_seconds=settings.web_rpc_timeout_seconds)
    # In the wallet's database: the edge runs as several replicas, and a browser may reach any of them.
    sessions = SqlSessionStore(engine, cipher=session_cipher(settings, production),
                               idle_seconds=settings.web_session_idle_seconds,
                               max_seconds=settings.web_session_max_seconds)
    install(app, wallet, identity, sessions=sessions, cookie_secure=settings.web_cookie_secure,
            provider=settings.web_login_provider, public_url=settings.web_public_url)
    return MountedPages(wallet, identity, sessions, [wallet.close, identity.close])
