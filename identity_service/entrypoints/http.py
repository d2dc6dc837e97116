"""Identity's HTTP edge (Flask): OIDC discovery, JWKS, the revocation list, the login redirect and callback,
and an OAuth token endpoint; failures answer with OAuth/OIDC error codes, never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask, jsonify, redirect, request, url_for
from werkzeug.wrappers import Response

from identity_service.domain import clients as client_rules
from identity_service.domain import scopes as scope_rules
from identity_service.service_layer.handlers import (
    ACCESS_TOKEN_TYPE_URN,
    ClientTokenRequest,
    ExchangeRequest,
    IdentityHandlers,
    IssuedTokens,
)
from servicekit.errors import DomainError, PermissionDenied, Unauthenticated, Unavailable
from servicekit.logs import request_id_var

log = logging.getLogger("dvc.identity.http")

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
REVOCATIONS_MAX_AGE_SECONDS = 5
_CLIENT_AUTH_REASONS = frozenset({"INVALID_CLIENT", "INVALID_CLIENT_SECRET", "AUTH_METHOD_NOT_ALLOWED",
                                  "MISSING_CLIENT_CREDENTIALS", "UNSUPPORTED_ASSERTION_TYPE", "MISSING_CLIENT_ID"})
_SCOPE_REASONS = frozenset({"SCOPE_NOT_ALLOWED", "SCOPE_AUDIENCE_MISMATCH", "UNKNOWN_SCOPE"})


def oauth_error(error: DomainError, *, client_auth: bool = False) -> tuple[int, dict[str, Any]]:
    """RFC 6749 §5.2 / OIDC error code and HTTP status for a domain error; our reason code rides along."""
    reason = error.reason
    if reason in _CLIENT_AUTH_REASONS or (client_auth and isinstance(error, Unauthenticated)):
        status, code = 401, "invalid_client"
    elif reason in _SCOPE_REASONS:
        status, code = 400, "invalid_scope"
    elif reason == "UNKNOWN_AUDIENCE":
        status, code = 400, "invalid_target"
    elif reason == "STEP_UP_REQUIRED":
        status, code = 401, "insufficient_user_authentication"
    elif isinstance(error, Unauthenticated | PermissionDenied):
        status, code = 400, "invalid_grant"
    elif isinstance(error, Unavailable):
        status, code = 503, "temporarily_unavailable"
    else:
        status, code = 400, "invalid_request"
    body: dict[str, Any] = {"error": code, "error_description": error.message, "dvc_reason": reason}
    body.update({f"dvc_{key}": value for key, value in error.metadata.items()})
    return status, body


def _json(body: dict[str, Any], status: int = 200, cache: str = "no-store") -> Response:
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = cache
    if cache == "no-store":
        response.headers["Pragma"] = "no-cache"
    return response


def _token_body(tokens: IssuedTokens, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"access_token": tokens.access_token, "token_type": "Bearer",
                            "expires_in": tokens.expires_in, "scope": " ".join(tokens.scopes),
                            "audience": tokens.audience}
    if tokens.refresh_token:
        body["refresh_token"] = tokens.refresh_token
    body.update(extra)
    return body


def create_app(handlers: IdentityHandlers, *, login_redirect_uri: str = "") -> Flask:
    """The edge; ``login_redirect_uri`` overrides the callback URL derived from the request."""
    app = Flask("identity")
    policy = handlers.policy
    issuer = policy.issuer.rstrip("/")

    def answer(action: Callable[[], Response], *, client_auth: bool = False) -> Response:
        try:
            return action()
        except DomainError as error:
            status, body = oauth_error(error, client_auth=client_auth)
            response = _json(body, status)
            if status == 401 and client_auth:
                response.headers["WWW-Authenticate"] = 'Basic realm="dvc-identity"'
            return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        if hasattr(error, "code") and hasattr(error, "description"):  # werkzeug HTTP errors (404, 405...)
            return _json({"error": "invalid_request", "error_description": str(error.description)},
                         int(error.code))
        log.exception("unhandled error on the identity edge")
        return _json({"error": "server_error", "error_description":
                      f"internal error; quote request id {request_id_var.get() or 'n/a'}"}, 500)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> Response:
        return _json({
            "issuer": issuer, "jwks_uri": f"{issuer}/jwks.json", "token_endpoint": policy.token_endpoint,
            "revocation_endpoint": f"{issuer}/revoke", "userinfo_endpoint": f"{issuer}/userinfo",
            "authorization_endpoint": f"{issuer}/login/start",
            "dvc_revocations_uri": f"{issuer}/revocations.json",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "grant_types_supported": ["client_credentials", "refresh_token", TOKEN_EXCHANGE_GRANT],
            "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post", "client_secret_basic"],
            "token_endpoint_auth_signing_alg_values_supported": list(client_rules.ASSERTION_ALGORITHMS),
            "scopes_supported": sorted(scope_rules.KNOWN_SCOPES),
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "dvc_kind", "scope", "loa",
                                 "agency", "roles", "client_id", "act"],
        }, cache=f"public, max-age={policy.jwks_max_age_seconds}")

    @app.get("/jwks.json")
    def jwks() -> Response:
        keys, _ = handlers.jwks()
        return _json(keys, cache=f"public, max-age={policy.jwks_max_age_seconds}")

    @app.get("/revocations.json")
    def revocations() -> Response:
        return _json({"revoked_jtis": handlers.revoked_jtis()},
                     cache=f"public, max-age={REVOCATIONS_MAX_AGE_SECONDS}")

    def callback_url() -> str:
        return login_redirect_uri or url_for("login_callback", _external=True)

    @app.get("/login/start")
    def login_start() -> Response:
        def start() -> Response:
            started = handlers.start_login(request.args.get("provider", ""), callback_url(),
                                           request.args.get("audience", ""))
            response = redirect(started.authorization_url, code=302)
            response.headers["Cache-Control"] = "no-store"
            return response

        return answer(start)

    @app.get("/login/callback")
    def login_callback() -> Response:
        if request.args.get("error"):
            # The upstream's own OIDC error (e.g. access_denied) is passed on as it came.
            return _json({"error": request.args["error"],
                          "error_description": request.args.get("error_description", ""),
                          "state": request.args.get("state", "")}, 400)

        def complete() -> Response:
            done = handlers.complete_login(request.args.get("state", ""), request.args.get("code", ""))
            return _json(_token_body(done.tokens, subject=done.subject, dvc_kind=done.identity.kind,
                                     loa=done.identity.level, name=done.identity.name,
                                     agency=done.identity.agency, roles=list(done.identity.roles),
                                     returning=done.returning))

        return answer(complete)

    def client_credentials() -> tuple[str, str]:
        authorization = request.authorization
        if authorization is not None and authorization.type == "basic":
            return authorization.username or "", authorization.password or ""
        return request.form.get("client_id", ""), request.form.get("client_secret", "")

    def bearer() -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    @app.post("/token")
    def token() -> Response:
        grant = request.form.get("grant_type", "")
        form = request.form
        if grant == "client_credentials":
            def client_token() -> Response:
                client_id, secret = client_credentials()
                tokens = handlers.issue_client_token(ClientTokenRequest(
                    client_id=client_id, audience=form.get("audience", ""), scope=form.get("scope", ""),
                    client_assertion_type=form.get("client_assertion_type", ""),
                    client_assertion=form.get("client_assertion", ""), client_secret=secret))
                return _json(_token_body(tokens))

            return answer(client_token, client_auth=True)
        if grant == "refresh_token":
            return answer(lambda: _json(_token_body(handlers.refresh(form.get("refresh_token", ""),
                                                                     form.get("audience", "")))))
        if grant == TOKEN_EXCHANGE_GRANT:
            def exchange() -> Response:
                tokens, delegation = handlers.exchange(ExchangeRequest(
                    subject_token=form.get("subject_token", ""),
                    subject_token_type=form.get("subject_token_type", ""), audience=form.get("audience", ""),
                    actor_token=form.get("actor_token", "") or bearer(),
                    actor_token_type=form.get("actor_token_type", ""), scope=form.get("scope", ""),
                    requested_token_type=form.get("requested_token_type", "")), None)
                return _json(_token_body(tokens, issued_token_type=ACCESS_TOKEN_TYPE_URN,
                                         dvc_delegation_id=delegation.delegation_id))

            return answer(exchange)
        return _json({"error": "unsupported_grant_type",
                      "error_description": "use client_credentials, refresh_token or token exchange"}, 400)

    @app.post("/revoke")
    def revoke() -> Response:
        def do_revoke() -> Response:
            handlers.revoke(token=request.form.get("token", ""))
            return _json({})

        return answer(do_revoke)

    @app.get("/userinfo")
    def userinfo() -> Response:
        def info() -> Response:
            token = bearer()
            if not token:
                raise Unauthenticated("send 'Authorization: Bearer <access token>'", reason="MISSING_TOKEN")
            principal = handlers.verify_access_token(token, scope_rules.AUDIENCE_IDENTITY)
            account = handlers.user_info(principal).account
            return _json({"sub": principal.subject, "dvc_kind": principal.kind, "loa": principal.level_of_assurance,
                          "agency": principal.agency, "roles": sorted(principal.roles),
                          "name": account.name if account else ""})

        response = answer(info)
        if response.status_code == 400 and response.is_json and (response.get_json() or {}).get(
                "error") == "invalid_grant":
            # A bad bearer token on a resource endpoint is RFC 6750's invalid_token, not a grant error.
            body = dict(response.get_json() or {})
            body["error"] = "invalid_token"
            response = _json(body, 401)
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response

    return app
