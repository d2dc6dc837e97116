"""The claims of a platform access token: exactly the contract servicekit's TokenVerifier reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_ACCESS_TOKEN_SECONDS = 900


def access_token_claims(*, issuer: str, subject: str, audience: str, kind: str, jti: str, issued_at: int,
                        lifetime: int, scopes: Iterable[str] = (), level: int = 0, agency: str = "",
                        roles: Iterable[str] = (), client_id: str = "",
                        act: dict[str, Any] | None = None) -> dict[str, Any]:
    """One audience, at most 15 minutes, ``nbf`` = ``iat``; optional claims only when they say something."""
    if not 0 < lifetime <= MAX_ACCESS_TOKEN_SECONDS:
        raise ValueError(f"access token lifetime {lifetime}s is outside 1..{MAX_ACCESS_TOKEN_SECONDS}s")
    claims: dict[str, Any] = {
        "iss": issuer, "sub": subject, "aud": audience, "iat": issued_at, "nbf": issued_at,
        "exp": issued_at + lifetime, "jti": jti, "dvc_kind": kind, "scope": " ".join(sorted(set(scopes))),
    }
    if level:
        claims["loa"] = level
    if agency:
        claims["agency"] = agency
    role_list = sorted(set(roles))
    if role_list:
        claims["roles"] = role_list
    if client_id:
        claims["client_id"] = client_id
    if act:
        claims["act"] = act
    return claims
