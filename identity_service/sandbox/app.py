"""Sandbox OIDC provider (Flask) standing in for VNeID or an agency provider: discovery, JWKS, an authorization
endpoint with a login page of test accounts, and a token endpoint with PKCE (S256).

Besides the HTML page, ``POST /authorize`` with the same query parameters plus ``account`` redirects straight
to the callback with a code, so scripts and load tests log in without scraping HTML. An optional ``fault``
field makes the ID token misbehave on purpose (see FAULTS) to exercise the relying party's checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlparse

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, jsonify, redirect, render_template_string, request
from jwt.algorithms import ECAlgorithm
from werkzeug.wrappers import Response

from identity_service.domain import pkce
from identity_service.domain.subjects import is_national_id
from identity_service.sandbox.accounts import (
    PROVIDER_AGENCY,
    PROVIDER_VNEID,
    SandboxAccount,
    accounts_for,
    synthetic_citizen,
    upstream_claims,
)

FAULTS = ("expired", "not_yet_valid", "stale", "wrong_audience", "wrong_issuer", "bad_signature", "alg_none",
          "hs256_public_key", "unknown_kid", "wrong_nonce", "crit", "no_national_id", "no_dependents", "malformed")
CODE_TTL_SECONDS = 60
ID_TOKEN_SECONDS = 300

DEV_CLIENT_SECRETS = {PROVIDER_VNEID: "dev-sandbox-vneid-secret", PROVIDER_AGENCY: "dev-sandbox-agency-secret"}
TITLES = {PROVIDER_VNEID: "VNeID — môi trường thử nghiệm (sandbox)",
          PROVIDER_AGENCY: "Xác thực cán bộ — môi trường thử nghiệm (sandbox)"}


@dataclass(frozen=True)
class SandboxClient:
    """A relying party registered at the sandbox; no redirect URIs listed means any loopback http URL."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...] = ()

    def accepts(self, redirect_uri: str) -> bool:
        if self.redirect_uris:
            return redirect_uri in self.redirect_uris
        parsed = urlparse(redirect_uri)
        return parsed.scheme in ("http", "https") and parsed.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass
class _Grant:
    """An authorization code issued and waiting to be redeemed."""

    client_id: str
    redirect_uri: str
    code_challenge: str
    nonce: str
    account: SandboxAccount
    fault: str
    issued_at: float
    used: bool = False


@dataclass
class _State:
    """Everything one sandbox instance remembers: its keys, clients and outstanding codes."""

    provider: str
    issuer: str | None
    clients: dict[str, SandboxClient]
    clock: Callable[[], float]
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    rogue_key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    kid: str = field(default_factory=lambda: f"sandbox-{uuid.uuid4().hex[:8]}")
    grants: dict[str, _Grant] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unsigned_parts(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


_LOGIN_PAGE = """<!doctype html>
<html lang="vi"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
button{font-size:1rem;padding:.5rem 1rem;margin:.25rem 0;cursor:pointer}li{margin:.75rem 0;list-style:none}
.note{color:#555;font-size:.9rem}</style></head>
<body><h1>{{ title }}</h1>
<p>Ứng dụng <strong>{{ client_id }}</strong> yêu cầu đăng nhập. Chọn một tài khoản thử nghiệm
(test accounts — no password in the sandbox):</p>
<ul>
{% for account in accounts %}
<li><form method="post" action="{{ action }}">
{% for name, value in params.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<input type="hidden" name="account" value="{{ account.username }}">
<button type="submit">{{ account.name }} ({{ account.username }})</button>
<div class="note">mức {{ account.level }}{% if account.agency %} · {{ account.agency }}{% endif %}
{% if account.note %} · {{ account.note }}{% endif %}</div>
</form></li>
{% endfor %}
</ul>
<form method="post" action="{{ action }}">
{% for name, value in params.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
<input type="hidden" name="account" value="deny"><button type="submit">Từ chối (deny)</button></form>
</body></html>"""


def create_app(provider: str = PROVIDER_VNEID, *, issuer: str | None = None,
               clients: Mapping[str, SandboxClient] | None = None, clock: Callable[[], float] = time.time) -> Flask:
    """The sandbox provider; ``issuer`` defaults to the URL it is reached at (handy with port 0 in tests)."""
    if provider not in (PROVIDER_VNEID, PROVIDER_AGENCY):
        raise ValueError(f"provider must be {PROVIDER_VNEID} or {PROVIDER_AGENCY}")
    registered = dict(clients or {"dvc-portal": SandboxClient("dvc-portal", DEV_CLIENT_SECRETS[provider])})
    state = _State(provider, issuer.rstrip("/") if issuer else None, registered, clock)
    app = Flask(f"sandbox-{provider}")
    app.extensions["dvc_sandbox"] = state

    def current_issuer() -> str:
        return state.issuer or request.url_root.rstrip("/")

    def oauth_error(error: str, description: str, status: int = 400) -> Response:
        response = jsonify({"error": error, "error_description": description})
        response.status_code = status
        response.headers["Cache-Control"] = "no-store"
        return response

    def redirect_error(redirect_uri: str, error: str, description: str, client_state: str) -> Response:
        query = urlencode({"error": error, "error_description": description, "state": client_state})
        return redirect(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}", code=302)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        base = current_issuer()
        return jsonify({
            "issuer": base, "authorization_endpoint": f"{base}/authorize", "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks.json", "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"], "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"], "grant_types_supported": ["authorization_code"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "scopes_supported": ["openid", "profile", "national_id"],
        })

    @app.get("/jwks.json")
    def jwks() -> Response:
        public = ECAlgorithm.to_jwk(state.key.public_key(), as_dict=True)
        public.update({"kid": state.kid, "use": "sig", "alg": "ES256"})
        response = jsonify({"keys": [public]})
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @app.get("/accounts.json")
    def account_list() -> Response:
        return jsonify({"accounts": [{"username": a.username, "national_id": a.national_id, "name": a.name,
                                      "level": a.level, "agency": a.agency, "roles": list(a.roles),
                                      "dependents": list(a.dependents), "note": a.note}
                                     for a in accounts_for(provider)]})

    def authorization_request(params: Mapping[str, str]) -> tuple[dict[str, str] | None, Response | None]:
        """Validate the request; errors before the redirect URI is trusted are shown, later ones redirected."""
        client = state.clients.get(params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        if client is None:
            return None, oauth_error("invalid_client", "unknown client_id")
        if not client.accepts(redirect_uri):
            return None, oauth_error("invalid_request", "redirect_uri is not registered for this client")
        client_state = params.get("state", "")
        checks = [(params.get("response_type") == "code", "unsupported_response_type", "response_type must be code"),
                  (bool(params.get("code_challenge")), "invalid_request", "code_challenge is required (PKCE)"),
                  (params.get("code_challenge_method") == pkce.METHOD_S256, "invalid_request",
                   "code_challenge_method must be S256"),
                  (bool(client_state), "invalid_request", "state is required"),
                  (bool(params.get("nonce")), "invalid_request", "nonce is required"),
                  ("openid" in params.get("scope", "").split(), "invalid_scope", "scope must include openid")]
        for passed, error, description in checks:
            if not passed:
                return None, redirect_error(redirect_uri, error, description, client_state)
        wanted = ("response_type", "client_id", "redirect_uri", "scope", "state", "nonce", "code_challenge",
                  "code_challenge_method")
        return {name: params.get(name, "") for name in wanted}, None

    @app.get("/authorize")
    def login_page() -> Response | str:
        params, error = authorization_request(request.args)
        if error is not None:
            return error
        return render_template_string(_LOGIN_PAGE, title=TITLES[provider], client_id=params["client_id"] if params
                                      else "", accounts=accounts_for(provider), params=params,
                                      action=f"{current_issuer()}/authorize")

    def find_account(username: str, level: str) -> SandboxAccount | None:
        for account in accounts_for(provider):
            if account.username == username:
                return account
        if provider == PROVIDER_VNEID and is_national_id(username):
            return synthetic_citizen(username, 1 if level == "1" else 2)
        return None

    @app.post("/authorize")
    def authorize() -> Response:
        params, error = authorization_request(request.form)
        if error is not None or params is None:
            return error or oauth_error("invalid_request", "bad request")
        username = request.form.get("account", "")
        if username == "deny":
            return redirect_error(params["redirect_uri"], "access_denied", "the user declined", params["state"])
        account = find_account(username, request.form.get("level", ""))
        fault = request.form.get("fault", "")
        if account is None or (fault and fault not in FAULTS):
            problem = "unknown account" if account is None else f"unknown fault; use one of {', '.join(FAULTS)}"
            return redirect_error(params["redirect_uri"], "invalid_request", problem, params["state"])
        code = secrets.token_urlsafe(32)
        with state.lock:
            now = state.clock()
            for stale in [c for c, g in state.grants.items() if now - g.issued_at > 10 * CODE_TTL_SECONDS]:
                del state.grants[stale]
            state.grants[code] = _Grant(params["client_id"], params["redirect_uri"], params["code_challenge"],
                                        params["nonce"], account, fault, now)
        uri = params["redirect_uri"]
        return redirect(f"{uri}{'&' if '?' in uri else '?'}{urlencode({'code': code, 'state': params['state']})}",
                        code=302)

    def client_credentials() -> tuple[str, str]:
        authorization = request.authorization
        if authorization is not None and authorization.type == "basic":
            # RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding; a lenient provider would hide a
            # client that forgets to.
            return unquote_plus(authorization.username or ""), unquote_plus(authorization.password or "")
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    @app.post("/token")
    def token() -> Response:
        if request.form.get("grant_type") != "authorization_code":
            return oauth_error("unsupported_grant_type", "only authorization_code is supported")
        client_id, client_secret = client_credentials()
        client = state.clients.get(client_id)
        if client is None or not hmac.compare_digest(client.client_secret.encode(), client_secret.encode()):
            return oauth_error("invalid_client", "client authentication failed", 401)
        code = request.form.get("code", "")
        if not code:
            return oauth_error("invalid_request", "code is required")
        with state.lock:
            grant = state.grants.get(code)
            replayed = grant is not None and grant.used
            if grant is not None:
                grant.used = True  # one presentation burns the code, even if the rest of the request is wrong
        if grant is None:
            return oauth_error("invalid_grant", "unknown authorization code")
        if replayed:
            return oauth_error("invalid_grant", "authorization code was already used")
        if state.clock() - grant.issued_at > CODE_TTL_SECONDS:
            return oauth_error("invalid_grant", "authorization code has expired")
        if grant.client_id != client_id:
            return oauth_error("invalid_grant", "code was issued to another client")
        if request.form.get("redirect_uri", "") != grant.redirect_uri:
            return oauth_error("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = request.form.get("code_verifier", "")
        if not pkce.is_valid_verifier(verifier) or not hmac.compare_digest(pkce.s256_challenge(verifier),
                                                                           grant.code_challenge):
            return oauth_error("invalid_grant", "PKCE verification failed (code_verifier)")
        response = jsonify({"access_token": secrets.token_urlsafe(24), "token_type": "Bearer",
                            "expires_in": ID_TOKEN_SECONDS, "scope": "openid profile",
                            "id_token": id_token(grant, current_issuer())})
        response.headers["Cache-Control"] = "no-store"
        return response

    def id_token(grant: _Grant, base: str) -> str:
        now = int(state.clock())
        claims: dict[str, Any] = {
            "iss": base, "sub": grant.account.opaque_sub(grant.client_id), "aud": grant.client_id,
            "iat": now, "exp": now + ID_TOKEN_SECONDS, "auth_time": now, "nonce": grant.nonce,
            **upstream_claims(provider, grant.account)}
        header: dict[str, Any] = {"kid": state.kid, "typ": "JWT"}
        key = state.key
        fault = grant.fault
        if fault == "expired":
            claims.update(iat=now - 700, exp=now - 400, auth_time=now - 700)
        elif fault == "not_yet_valid":
            claims.update(iat=now + 600, nbf=now + 600, exp=now + 900)
        elif fault == "stale":
            claims.update(iat=now - 3600, auth_time=now - 3600)
        elif fault == "wrong_audience":
            claims["aud"] = "some-other-relying-party"
        elif fault == "wrong_issuer":
            claims["iss"] = "https://impostor.example"
        elif fault == "wrong_nonce":
            claims["nonce"] = "not-the-nonce-of-this-login"
        elif fault == "no_national_id":
            for name in ("so_dinh_danh", "so_cccd"):
                claims.pop(name, None)
        elif fault == "no_dependents":
            claims.pop("giam_ho_cho", None)  # the upstream no longer records the guardianship
        elif fault == "bad_signature":
            key = state.rogue_key
        elif fault == "unknown_kid":
            key, header["kid"] = state.rogue_key, "sandbox-unpublished"
        elif fault == "crit":
            header.update(crit=["urn:dvc:sandbox:unknown"], **{"urn:dvc:sandbox:unknown": True})
        elif fault == "malformed":
            return "this-is-not.a-jwt"
        elif fault == "alg_none":
            return _unsigned_parts({**header, "alg": "none"}, claims) + "."
        elif fault == "hs256_public_key":
            # The classic key-confusion attack: HMAC keyed with the provider's PUBLIC key.
            public_pem = state.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo)
            signing_input = _unsigned_parts({**header, "alg": "HS256"}, claims)
            mac = hmac.new(public_pem, signing_input.encode("ascii"), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        return jwt.encode(claims, key, algorithm="ES256", headers=header)

    return app
