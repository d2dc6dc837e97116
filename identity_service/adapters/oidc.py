"""OIDC relying-party code for the upstream providers: discovery, the authorization URL, redeeming the code,
and verifying the ID token. Every outbound call has a timeout."""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests

from identity_service.adapters import jwt_checks
from identity_service.domain.providers import Provider
from servicekit.auth import JwksCache, http_json
from servicekit.errors import Unauthenticated, Unavailable

ID_TOKEN = "upstream ID token"
ID_TOKEN_REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "nonce")
DISCOVERY_CACHE_SECONDS = 3600.0
# An ID token is consumed right after it is issued; one minted long ago is a replay, not a fresh login.
MAX_ID_TOKEN_AGE_SECONDS = 600


class UpstreamClient:
    """One instance per process; caches discovery documents and each provider's JWKS."""

    def __init__(self, *, timeout_seconds: float = 5.0, leeway_seconds: int = 30,
                 jwks_min_refetch_seconds: float = 10.0, clock: Callable[[], float] = time.time) -> None:
        self._timeout = timeout_seconds
        self._leeway = leeway_seconds
        self._min_refetch = jwks_min_refetch_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._discovery: dict[str, tuple[float, dict[str, Any]]] = {}
        self._keys: dict[str, JwksCache] = {}

    def _unavailable(self, provider: Provider, problem: str) -> Unavailable:
        return Unavailable(f"identity provider {provider.provider_id} {problem}", reason="UPSTREAM_UNAVAILABLE",
                           metadata={"provider": provider.provider_id})

    def discover(self, provider: Provider) -> dict[str, Any]:
        cached = self._discovery.get(provider.discovery_url)
        if cached and self._clock() - cached[0] < DISCOVERY_CACHE_SECONDS:
            return cached[1]
        try:
            document = http_json(provider.discovery_url, timeout=self._timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to reach or parse the provider is "unavailable"
            raise self._unavailable(provider, f"discovery failed ({type(exc).__name__})") from None
        if document.get("issuer") != provider.issuer:
            raise self._unavailable(provider, f"announces issuer {document.get('issuer')!r}, configured "
                                              f"{provider.issuer!r}")
        for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(endpoint), str):
                raise self._unavailable(provider, f"discovery document lacks {endpoint}")
        self._discovery[provider.discovery_url] = (self._clock(), document)
        return document

    def authorization_url(self, provider: Provider, *, redirect_uri: str, state: str, nonce: str,
                          code_challenge: str) -> str:
        endpoint = self.discover(provider)["authorization_endpoint"]
        query = urlencode({"response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect_uri,
                           "scope": " ".join(provider.upstream_scopes), "state": state, "nonce": nonce,
                           "code_challenge": code_challenge, "code_challenge_method": "S256"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def redeem_code(self, provider: Provider, *, code: str, redirect_uri: str, code_verifier: str) -> str:
        """Trade the code for tokens at the provider's token endpoint; returns the ID token."""
        endpoint = self.discover(provider)["token_endpoint"]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "client_id": provider.client_id, "code_verifier": code_verifier}
        if provider.client_secret:
            form["client_secret"] = provider.client_secret
        try:
            response = requests.post(endpoint, data=form, timeout=self._timeout,
                                     headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise self._unavailable(provider, f"token endpoint unreachable ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500 or not isinstance(body, dict):
            raise self._unavailable(provider, f"token endpoint answered HTTP {response.status_code}")
        if response.status_code != 200:
            error = str(body.get("error", "invalid_request"))
            raise Unauthenticated(f"identity provider {provider.provider_id} refused the code: {error} "
                                  f"({body.get('error_description', '')})",
                                  reason=f"UPSTREAM_{error.upper()}"[:64],
                                  metadata={"provider": provider.provider_id, "upstream_error": error})
        id_token = body.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise Unauthenticated(f"identity provider {provider.provider_id} returned no ID token",
                                  reason="UPSTREAM_NO_ID_TOKEN", metadata={"provider": provider.provider_id})
        return id_token

    def _key_cache(self, provider: Provider) -> JwksCache:
        jwks_uri = self.discover(provider)["jwks_uri"]
        cache = self._keys.get(jwks_uri)
        if cache is None:
            with self._lock:
                cache = self._keys.get(jwks_uri)
                if cache is None:
                    cache = JwksCache(lambda: http_json(jwks_uri, timeout=self._timeout),
                                      min_refetch_seconds=self._min_refetch)
                    self._keys[jwks_uri] = cache
        return cache

    def verify_id_token(self, provider: Provider, id_token: str, nonce: str) -> dict[str, Any]:
        """Signature by a key of the provider's JWKS with an allowed algorithm, iss, aud, exp, iat, nonce."""
        where = {"provider": provider.provider_id}
        header = jwt_checks.unverified_header(id_token, ID_TOKEN, where)
        algorithm, kid = jwt_checks.check_header(header, provider.allowed_algorithms, ID_TOKEN, where)
        try:
            key = self._key_cache(provider).key_for(kid)
        except Unauthenticated as error:
            raise Unauthenticated(f"the {ID_TOKEN} was signed with a key the provider does not publish "
                                  f"(kid {kid!r})", reason=error.reason, metadata={"token": ID_TOKEN, **where}) \
                from None
        claims = jwt_checks.decode(id_token, key, algorithm, issuer=provider.issuer,
                                   audience=provider.expected_audience, leeway=self._leeway,
                                   required=ID_TOKEN_REQUIRED_CLAIMS, what=ID_TOKEN, metadata=where)
        issued_at = float(claims["iat"])
        if issued_at < self._clock() - MAX_ID_TOKEN_AGE_SECONDS - self._leeway:
            raise Unauthenticated(f"the {ID_TOKEN} was issued too long ago (iat)", reason="TOKEN_TOO_OLD",
                                  metadata={"token": ID_TOKEN, **where})
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthenticated(f"the {ID_TOKEN} nonce does not match this login", reason="NONCE_MISMATCH",
                                  metadata={"token": ID_TOKEN, **where})
        return claims
