"""PKCE (RFC 7636) with the S256 method only: the verifier, its challenge and the check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from servicekit.errors import Unauthenticated

METHOD_S256 = "S256"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def new_verifier() -> str:
    """A fresh high-entropy verifier (43 characters of the unreserved alphabet)."""
    return secrets.token_urlsafe(32)


def is_valid_verifier(verifier: str) -> bool:
    return bool(_VERIFIER.fullmatch(verifier))


def s256_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check(verifier: str, challenge: str, method: str = METHOD_S256) -> None:
    """Refuse unless ``verifier`` is well formed and hashes to ``challenge`` (plain is not accepted)."""
    if method != METHOD_S256:
        raise Unauthenticated(f"PKCE method {method!r} is not accepted; use S256", reason="PKCE_METHOD_NOT_ALLOWED")
    if not is_valid_verifier(verifier):
        raise Unauthenticated("the PKCE code_verifier is missing or malformed", reason="PKCE_VERIFIER_MALFORMED")
    if not hmac.compare_digest(s256_challenge(verifier), challenge):
        raise Unauthenticated("the PKCE code_verifier does not match the code_challenge", reason="PKCE_MISMATCH")
