"""Verifying a JWT from outside (an upstream ID token, a client assertion) with one reason code per failure."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

import jwt
from jwt import PyJWK

from servicekit.errors import Unauthenticated


def _refuse(what: str, problem: str, reason: str, metadata: dict[str, str]) -> Unauthenticated:
    return Unauthenticated(f"the {what} {problem}", reason=reason, metadata={"token": what, **metadata})


def segment(token: str, index: int, what: str = "token", metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """One JSON segment of a compact JWT (0 header, 1 payload), unverified."""
    try:
        if token.count(".") != 2:
            raise ValueError("a JWT has three parts")
        encoded = token.split(".")[index]
        value = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise _refuse(what, "is not a well-formed JWT", "MALFORMED_TOKEN", metadata or {}) from None
    if not isinstance(value, dict):
        raise _refuse(what, "is not a well-formed JWT", "MALFORMED_TOKEN", metadata or {})
    return value


def unverified_header(token: str, what: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """The JOSE header, read before anything is trusted so that policy checks give precise reasons."""
    return segment(token, 0, what, metadata)


def check_header(header: dict[str, Any], allowed_algorithms: Sequence[str], what: str,
                 metadata: dict[str, str] | None = None) -> tuple[str, str]:
    """Pinned algorithms (so 'none' and HS256-with-a-public-key never reach a key), no critical extensions
    (we understand none), and a key id. Returns (alg, kid)."""
    extra = metadata or {}
    algorithm = header.get("alg")
    if algorithm not in allowed_algorithms:
        raise _refuse(what, f"uses algorithm {algorithm!r}; accepted: {', '.join(allowed_algorithms)}",
                      "ALGORITHM_NOT_ALLOWED", extra)
    if "crit" in header:
        raise _refuse(what, f"has critical header extensions we do not understand: {header['crit']}",
                      "UNKNOWN_CRITICAL_HEADER", extra)
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise _refuse(what, "has no key id (kid) in its header", "MISSING_KID", extra)
    return str(algorithm), kid


def decode(token: str, key: PyJWK, algorithm: str, *, issuer: str, audience: str | Sequence[str], leeway: int,
           required: Sequence[str], what: str, metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Signature, issuer, audience, lifetime (exp/nbf/iat with ``leeway``) and required claims."""
    extra = metadata or {}
    if key.algorithm_name != algorithm:
        raise _refuse(what, f"is signed with {algorithm} but key {key.key_id!r} is a {key.algorithm_name} key",
                      "ALGORITHM_MISMATCH", extra)
    try:
        return jwt.decode(token, key, algorithms=[algorithm], audience=audience, issuer=issuer, leeway=leeway,
                          options={"require": list(required), "verify_signature": True})
    except jwt.ExpiredSignatureError:
        raise _refuse(what, "has expired", "TOKEN_EXPIRED", extra) from None
    except jwt.ImmatureSignatureError:
        raise _refuse(what, "is not valid yet (nbf/iat in the future)", "TOKEN_NOT_YET_VALID", extra) from None
    except jwt.InvalidAudienceError:
        raise _refuse(what, "is not addressed to us (aud)", "WRONG_AUDIENCE", extra) from None
    except jwt.InvalidIssuerError:
        raise _refuse(what, "comes from an unexpected issuer (iss)", "WRONG_ISSUER", extra) from None
    except jwt.MissingRequiredClaimError as exc:
        raise _refuse(what, f"lacks the {exc.claim!r} claim", "MISSING_CLAIM", extra) from None
    except jwt.InvalidSignatureError:
        raise _refuse(what, "signature does not verify", "BAD_SIGNATURE", extra) from None
    except jwt.DecodeError:
        raise _refuse(what, "is not a well-formed JWT", "MALFORMED_TOKEN", extra) from None
    except jwt.PyJWTError as exc:
        raise _refuse(what, f"is invalid: {exc}", "INVALID_TOKEN", extra) from None
