"""Rotating refresh tokens: each is used once; presenting a used one again means it was stolen, so the whole
family (every refresh token descending from the same login) is revoked."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from servicekit.errors import Unauthenticated

REFRESH_TOKEN_PREFIX = "dvcrt_"


def new_refresh_token() -> str:
    """An opaque refresh token; only its hash is stored."""
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)


def looks_like_refresh_token(token: str) -> bool:
    return token.startswith(REFRESH_TOKEN_PREFIX)


def token_hash(token: str) -> str:
    """The stored form of an opaque token (SHA-256: the token has 256 bits of entropy, no slow hash needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RefreshState:
    """What rotation needs to know about one stored refresh token."""

    family_id: str
    expires_at: datetime
    family_expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class Verdict(StrEnum):
    """What to do with a presented refresh token."""

    VALID = "valid"
    REUSED = "reused"
    EXPIRED = "expired"
    REVOKED = "revoked"


def judge(state: RefreshState, now: datetime) -> Verdict:
    """Revoked beats reused beats expired: a reused token of a live family must end the family."""
    if state.revoked_at is not None:
        return Verdict.REVOKED
    if state.used_at is not None:
        return Verdict.REUSED
    if now >= min(state.expires_at, state.family_expires_at):
        return Verdict.EXPIRED
    return Verdict.VALID


_REFUSALS = {
    Verdict.REUSED: ("the refresh token was already used; the session has been revoked, log in again",
                     "REFRESH_TOKEN_REUSED"),
    Verdict.EXPIRED: ("the refresh token has expired; log in again", "REFRESH_TOKEN_EXPIRED"),
    Verdict.REVOKED: ("the refresh token has been revoked; log in again", "REFRESH_TOKEN_REVOKED"),
}


def refusal(verdict: Verdict) -> Unauthenticated:
    message, reason = _REFUSALS[verdict]
    return Unauthenticated(message, reason=reason)


def next_expiry(now: datetime, lifetime: timedelta, family_expires_at: datetime) -> datetime:
    """A rotated token lives ``lifetime`` but never beyond the family's absolute end."""
    return min(now + lifetime, family_expires_at)
