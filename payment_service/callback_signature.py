"""Sign and verify the platform's agency callbacks: ``X-DVC-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">``.

Integrators copy or import this module: ``verify(body, header, [secret])`` returns normally when the callback is
authentic and recent, and raises ``SignatureError`` with the reason otherwise. During a secret rotation the
platform sends one ``v1`` entry per active secret; any of them verifying is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

HEADER = "X-DVC-Signature"
EVENT_ID_HEADER = "X-DVC-Event-Id"
DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(Exception):
    """The callback is not authentic, is malformed, or is too old (a possible replay)."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """The header value for ``body``: one ``v1`` entry per secret, in the order given."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign a callback")
    moment = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={moment}", *(f"v1={_mac(secret, moment, body)}" for secret in secrets)])


def parse_header(header: str) -> tuple[int, list[str]]:
    """The timestamp and the ``v1`` signatures of a header value; unknown schemes are ignored."""
    timestamp: int | None = None
    signatures = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("the t= timestamp is not a whole number") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("the header has no t= timestamp")
    if not signatures:
        raise SignatureError("the header has no v1= signature")
    return timestamp, signatures


def verify(body: bytes, header: str, secrets: Sequence[str], *, tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
           now: float | None = None) -> int:
    """Check that one of the ``v1`` signatures is an HMAC of ``t.body`` under one of ``secrets`` and that ``t``
    is within ``tolerance_seconds`` of now; returns the timestamp."""
    timestamp, signatures = parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        raise SignatureError(f"the timestamp is {int(current - timestamp)} s away from now "
                             f"(tolerance {tolerance_seconds} s): possible replay")
    for secret in secrets:
        expected = _mac(secret, timestamp, body)
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return timestamp
    raise SignatureError("no v1 signature matches the secret(s)")
