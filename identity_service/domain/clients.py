"""Machine clients: registration rules, their credentials' shape, and who may change them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from identity_service.domain import scopes as scope_rules
from identity_service.domain import subjects
from servicekit.auth import KIND_CLIENT, Principal
from servicekit.errors import InvalidArgument, PermissionDenied, ViolationCollector

AUTH_PRIVATE_KEY_JWT = "private_key_jwt"
AUTH_CLIENT_SECRET = "client_secret"
AUTH_METHODS = (AUTH_PRIVATE_KEY_JWT, AUTH_CLIENT_SECRET)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Banks often hold RSA keys; HMAC and "none" are never accepted for an assertion.
ASSERTION_ALGORITHMS = ("ES256", "ES384", "EdDSA", "RS256", "PS256")
MAX_ASSERTION_LIFETIME_SECONDS = 300
MAX_SECRET_GRACE_SECONDS = 7 * 24 * 3600
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")


@dataclass(frozen=True)
class Client:
    """A registered machine client (its secret only as a hash)."""

    client_id: str
    display_name: str
    agency: str
    scopes: tuple[str, ...]
    auth_method: str
    public_jwks: dict[str, Any] | None
    secret_hash: str | None
    previous_secret_hash: str | None
    previous_secret_valid_until: datetime | None
    created_at: datetime
    rotated_at: datetime
    disabled: bool = False
    registration_key: str | None = None
    rotation_key: str | None = None

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(str(key["kid"]) for key in (self.public_jwks or {}).get("keys", []))


def parse_public_jwks(text: str, field: str = "public_jwks_json") -> dict[str, Any]:
    """A JWK set of public keys only, each with a unique kid; a private key sent by mistake is refused."""
    try:
        document = json.loads(text)
    except ValueError:
        raise InvalidArgument.single(field, "is not valid JSON", reason="INVALID_JWKS") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise InvalidArgument.single(field, 'must be {"keys": [...]} with at least one key', reason="INVALID_JWKS")
    seen: set[str] = set()
    for index, key in enumerate(keys):
        where = f"{field}.keys[{index}]"
        if not isinstance(key, dict) or not isinstance(key.get("kid"), str) or not key["kid"]:
            raise InvalidArgument.single(where, "every key needs a kid", reason="INVALID_JWKS")
        if key["kid"] in seen:
            raise InvalidArgument.single(where, f"duplicate kid {key['kid']!r}", reason="INVALID_JWKS")
        seen.add(key["kid"])
        if any(member in key for member in _PRIVATE_JWK_MEMBERS):
            raise InvalidArgument.single(where, "contains private key material: register the PUBLIC key only",
                                         reason="PRIVATE_KEY_SUBMITTED")
        if key.get("kty") not in ("EC", "OKP", "RSA"):
            raise InvalidArgument.single(where, "kty must be EC, OKP or RSA", reason="INVALID_JWKS")
        if key.get("alg") and key["alg"] not in ASSERTION_ALGORITHMS:
            raise InvalidArgument.single(where, f"alg must be one of {', '.join(ASSERTION_ALGORITHMS)}",
                                         reason="INVALID_JWKS")
    return {"keys": keys}


@dataclass(frozen=True)
class Registration:
    """A validated RegisterClient request."""

    client_id: str
    display_name: str
    agency: str
    scopes: tuple[str, ...]
    auth_method: str
    public_jwks: dict[str, Any] | None


def validate_registration(client_id: str, display_name: str, agency: str, scopes: list[str], auth_method: str,
                          public_jwks_json: str) -> Registration:
    problems = ViolationCollector()
    checked: dict[str, Any] = {}
    for name, check in (("client_id", lambda: subjects.client_id(client_id)),
                        ("agency", lambda: subjects.agency_code(agency)),
                        ("scopes", lambda: scope_rules.known_scopes(scopes))):
        try:
            checked[name] = check()
        except InvalidArgument as error:
            problems.violations.extend(error.violations)
    if not scopes:
        problems.add("scopes", "list at least one scope")
    jwks = None
    if auth_method == AUTH_PRIVATE_KEY_JWT:
        try:
            jwks = parse_public_jwks(public_jwks_json)
        except InvalidArgument as error:
            problems.violations.extend(error.violations)
    elif auth_method == AUTH_CLIENT_SECRET:
        if public_jwks_json:
            problems.add("public_jwks_json", "only for private_key_jwt clients")
    else:
        problems.add("auth_method", "must be private_key_jwt or client_secret")
    if len(display_name) > 200:
        problems.add("display_name", "at most 200 characters")
    problems.raise_if_any("the client registration is invalid")
    return Registration(checked["client_id"], display_name.strip(), checked["agency"], checked["scopes"],
                        auth_method, jwks)


def check_can_rotate(caller: Principal, client_id: str) -> None:
    """An admin rotates any client; a client rotates only its own credentials."""
    if caller.has_scope(scope_rules.ADMIN_SCOPE):
        return
    if caller.kind == KIND_CLIENT and caller.client_id == client_id and caller.actor is None:
        return
    raise PermissionDenied("only an admin or the client itself can rotate these credentials",
                           reason="NOT_YOUR_CLIENT")
