"""Citizen login for pages through the identity service's OIDC flow (StartLogin → upstream page → CompleteLogin),
tokens kept in the server-side session and refreshed there, and logout that ends the identity session too."""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import quote

import grpc
from dvc.identity.v1 import identity_pb2 as pb
from dvc.identity.v1 import identity_pb2_grpc
from flask import Blueprint, g, redirect, request
from flask.typing import ResponseReturnValue

from servicekit.grpc_client import service_channel
from servicekit.web import site
from servicekit.web.grpc_calls import CallFailed, call_failed

log = logging.getLogger("dvc.web.login")

REFRESH_MARGIN_SECONDS = 30
LOGIN_ATTEMPT_SECONDS = 600
_KIND_NAMES = {pb.SUBJECT_KIND_CITIZEN: "citizen", pb.SUBJECT_KIND_OFFICIAL: "official",
               pb.SUBJECT_KIND_CLIENT: "client"}

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


@dataclass(frozen=True)
class Tokens:
    """The platform tokens of one login (never sent to the browser)."""

    access_token: str
    access_expires_at: float
    refresh_token: str


@dataclass(frozen=True)
class CompletedLogin:
    """Who logged in, as identity reports it."""

    subject: str
    kind: str
    level: int
    name: str
    tokens: Tokens


class IdentityPort(Protocol):
    """What the pages need from the identity service."""

    def start_login(self, provider: str, redirect_uri: str, audience: str) -> tuple[str, str]:
        """(authorization URL, state) of a new login at ``provider``."""

    def complete_login(self, state: str, code: str) -> CompletedLogin: ...

    def refresh(self, refresh_token: str, audience: str) -> Tokens: ...

    def logout(self, refresh_token: str) -> None: ...


def _tokens(message: pb.TokenSet) -> Tokens:
    # ToDatetime() alone is naive UTC, which .timestamp() would read as local time (off by the zone's offset).
    expires = message.expires_at.ToDatetime(tzinfo=UTC).timestamp() if message.HasField("expires_at") else 0.0
    return Tokens(message.access_token, expires, message.refresh_token)


class GrpcIdentity:
    """IdentityPort over identity's gRPC API; every call has a deadline."""

    def __init__(self, target: str, timeout_seconds: float = 10.0) -> None:
        self._channel = service_channel(target)
        self._stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
        self._timeout = timeout_seconds

    def _call(self, method: Callable[..., Any], message: Any) -> Any:
        try:
            return method(message, timeout=self._timeout)
        except grpc.RpcError as error:
            raise call_failed(error) from None

    def start_login(self, provider: str, redirect_uri: str, audience: str) -> tuple[str, str]:
        started = self._call(self._stub.StartLogin, pb.StartLoginRequest(
            provider_id=provider, redirect_uri=redirect_uri, audience=audience))
        return started.authorization_url, started.state

    def complete_login(self, state: str, code: str) -> CompletedLogin:
        done = self._call(self._stub.CompleteLogin, pb.CompleteLoginRequest(state=state, code=code))
        return CompletedLogin(subject=done.subject, kind=_KIND_NAMES.get(done.kind, ""),
                              level=done.level_of_assurance, name=done.name, tokens=_tokens(done.tokens))

    def refresh(self, refresh_token: str, audience: str) -> Tokens:
        answer = self._call(self._stub.RefreshToken, pb.RefreshTokenRequest(refresh_token=refresh_token,
                                                                            audience=audience))
        return _tokens(answer.tokens)

    def logout(self, refresh_token: str) -> None:
        self._call(self._stub.Logout, pb.LogoutRequest(refresh_token=refresh_token))

    def close(self) -> None:
        self._channel.close()


class LoginNeeded(Exception):
    """The page needs a (fresh) login; handled by sending the browser to /login."""


@dataclass(frozen=True)
class SignedIn:
    """The person a page is for."""

    subject: str
    name: str
    level: int


def signed_in() -> SignedIn | None:
    session = site.current_session()
    user = session.data.get("user") if session is not None else None
    if not user:
        return None
    return SignedIn(user["subject"], user["name"], int(user["level"]))


def login_required(view: View) -> View:
    """Send a visitor who is not logged in to the login, coming back here afterwards."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        if signed_in() is None:
            raise LoginNeeded
        return view(*args, **kwargs)

    return cast(View, guarded)


def _to_login() -> ResponseReturnValue:
    here = request.full_path.rstrip("?") if request.method == "GET" else "/"
    return redirect(f"/login?next={quote(here, safe='/')}", code=303)


@dataclass
class LoginSettings:
    """How the login blueprint talks to identity."""

    identity: IdentityPort
    audience: str
    provider: str = "vneid"
    home: str = "/"
    public_url: str = ""


def _settings() -> LoginSettings:
    found: LoginSettings = site.kit().login
    return found


def access_token() -> str:
    """The signed-in person's access token, refreshed through identity when it is about to expire."""
    session = site.current_session()
    user = session.data.get("user") if session is not None else None
    if session is None or not user:
        raise LoginNeeded
    now = site.kit().clock()
    if float(user["access_expires_at"]) - REFRESH_MARGIN_SECONDS > now:
        return str(user["access_token"])
    store = site.kit().sessions
    assert store is not None
    # Two requests of one browser (on any replica) must not both spend the refresh token: identity treats a
    # reused refresh token as theft and ends the whole login.
    with store.exclusive(session.session_id):
        latest = store.load(session.session_id)  # another request of this browser may have refreshed meanwhile
        user = latest.data.get("user") if latest is not None else None
        if latest is None or not user:
            raise LoginNeeded
        if float(user["access_expires_at"]) - REFRESH_MARGIN_SECONDS > now:
            site.save_session(latest)
            return str(user["access_token"])
        settings = _settings()
        try:
            tokens = settings.identity.refresh(str(user["refresh_token"]), settings.audience)
        except CallFailed as failure:
            log.info("refresh refused; the person logs in again", extra={"reason": failure.reason})
            site.end_session()
            raise LoginNeeded from None
        user.update(access_token=tokens.access_token, access_expires_at=tokens.access_expires_at,
                    refresh_token=tokens.refresh_token or user["refresh_token"])
        store.save(latest)  # at once, so a concurrent request waiting on the lock sees the new tokens
        site.save_session(latest)
        return tokens.access_token


def login_blueprint(settings: LoginSettings) -> Blueprint:
    """/login, /login/callback and /logout; install after ``site.init_web`` with a session store."""
    blueprint = site.page_blueprint("login", __name__)

    @blueprint.record_once
    def remember(state: Any) -> None:
        state.app.extensions[site.EXTENSION].login = settings

    def callback_url() -> str:
        base = settings.public_url.rstrip("/") or request.host_url.rstrip("/")
        return f"{base}/login/callback"

    @blueprint.get("/login")
    def start() -> ResponseReturnValue:
        target = site.safe_next(request.args.get("next"), settings.home)
        if signed_in() is not None:
            return redirect(target, code=303)
        try:
            url, state = settings.identity.start_login(settings.provider, callback_url(), settings.audience)
        except CallFailed as failure:
            log.warning("login could not start", extra={"reason": failure.reason, "code": failure.code.name})
            return site.error_page(503, site.translate("Login is not available right now"),
                                   site.translate("Please try again in a few minutes."))
        session = site.current_session(create=True)
        assert session is not None
        session.data["login"] = {"state": state, "next": target, "at": site.kit().clock()}
        site.save_session(session)
        return redirect(url, code=303)

    @blueprint.get("/login/callback")
    def callback() -> ResponseReturnValue:
        session = site.current_session()
        pending = session.data.get("login") if session is not None else None
        if request.args.get("error"):
            return site.error_page(400, site.translate("Login was cancelled"),
                                   site.translate("You can try again from the home page."))
        state = request.args.get("state", "")
        fresh = pending is not None and site.kit().clock() - float(pending["at"]) < LOGIN_ATTEMPT_SECONDS
        # The state must be the one this browser started with: a callback link planted by someone else (login
        # CSRF) or an old one is refused.
        if session is None or pending is None or not fresh or not state \
                or not hmac.compare_digest(state.encode(), str(pending["state"]).encode()):
            return site.error_page(400, site.translate("This login link is not valid"),
                                   site.translate("Please start the login again."))
        try:
            done = settings.identity.complete_login(state, request.args.get("code", ""))
        except CallFailed as failure:
            log.info("login refused", extra={"reason": failure.reason})
            return site.error_page(400 if failure.http_status < 500 else 503,
                                   site.translate("Login did not succeed"),
                                   site.translate("Please start the login again."))
        if done.kind != "citizen":
            return site.error_page(403, site.translate("These pages are for citizens"),
                                   site.translate("Log in with a citizen's VNeID account."))
        rotated = site.rotate_session()
        rotated.data = {"user": {"subject": done.subject, "name": done.name, "level": done.level,
                                 "access_token": done.tokens.access_token,
                                 "access_expires_at": done.tokens.access_expires_at,
                                 "refresh_token": done.tokens.refresh_token}}
        site.save_session(rotated)
        return redirect(site.safe_next(str(pending["next"]), settings.home), code=303)

    @blueprint.post("/logout")
    def logout() -> ResponseReturnValue:
        session = site.current_session()
        user = session.data.get("user") if session is not None else None
        if user and user.get("refresh_token"):
            try:
                settings.identity.logout(str(user["refresh_token"]))
            except CallFailed as failure:  # the local session ends whatever identity says
                log.warning("identity logout failed", extra={"reason": failure.reason, "code": failure.code.name})
        site.end_session()
        return redirect("/?logged_out=1", code=303)

    return blueprint


def citizen_blueprint(name: str, import_name: str, **options: Any) -> Blueprint:
    """A page blueprint whose views may use ``login_required`` and ``access_token``; ``g.web_user`` is the
    signed-in person (or None) for the templates."""
    blueprint = site.page_blueprint(name, import_name, **options)
    blueprint.register_error_handler(LoginNeeded, lambda error: _to_login())

    @blueprint.before_request
    def who() -> None:
        g.web_user = signed_in()

    return blueprint
