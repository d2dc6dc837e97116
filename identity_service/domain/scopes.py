"""Audiences and scopes: one audience per token, and only scopes that belong to that audience."""

from __future__ import annotations

from collections.abc import Iterable

from servicekit.errors import InvalidArgument, PermissionDenied

AUDIENCE_PAYMENTS = "dvc-payments"
AUDIENCE_WALLET = "dvc-wallet"
AUDIENCE_IDENTITY = "dvc-identity"

# A scope belongs to the service named before its dot; a token for one service never carries another's scopes.
SCOPE_PREFIX_BY_AUDIENCE = {AUDIENCE_PAYMENTS: "payments.", AUDIENCE_WALLET: "wallet.", AUDIENCE_IDENTITY: "identity."}
AUDIENCES = frozenset(SCOPE_PREFIX_BY_AUDIENCE)
KNOWN_SCOPES = frozenset({
    "payments.create", "payments.read", "payments.admin",
    "wallet.issue", "wallet.redeem", "wallet.admin",
    "identity.admin",
})
ADMIN_SCOPE = "identity.admin"


def audience(value: str, field: str = "audience", default: str = "") -> str:
    """A platform audience, or ``default`` when empty."""
    chosen = value.strip() or default
    if chosen not in AUDIENCES:
        raise InvalidArgument.single(field, f"must be one of {', '.join(sorted(AUDIENCES))}",
                                     reason="UNKNOWN_AUDIENCE")
    return chosen


def split(scope: str) -> list[str]:
    return [part for part in scope.split() if part]


def known_scopes(values: Iterable[str], field: str = "scopes") -> tuple[str, ...]:
    """Validate scopes for a registration; sorted and de-duplicated."""
    chosen = sorted(set(values))
    unknown = [value for value in chosen if value not in KNOWN_SCOPES]
    if unknown:
        raise InvalidArgument.single(field, f"unknown scopes {', '.join(unknown)}; known: "
                                            f"{', '.join(sorted(KNOWN_SCOPES))}", reason="UNKNOWN_SCOPE")
    return tuple(chosen)


def for_audience(scopes: Iterable[str], target: str) -> tuple[str, ...]:
    """The subset of ``scopes`` that belongs to ``target``."""
    prefix = SCOPE_PREFIX_BY_AUDIENCE[target]
    return tuple(sorted({scope for scope in scopes if scope.startswith(prefix)}))


def grant(requested: str, allowed: Iterable[str], target: str) -> tuple[str, ...]:
    """Scopes for a token to ``target``: all allowed ones of that audience when none are requested, else exactly
    the requested ones, each of which must be known, belong to the audience and be allowed."""
    allowed_set = set(allowed)
    wanted = split(requested)
    if not wanted:
        return for_audience(allowed_set, target)
    known_scopes(wanted, "scope")
    prefix = SCOPE_PREFIX_BY_AUDIENCE[target]
    foreign = sorted(scope for scope in wanted if not scope.startswith(prefix))
    if foreign:
        raise InvalidArgument.single("scope", f"{', '.join(foreign)} do not belong to audience {target}",
                                     reason="SCOPE_AUDIENCE_MISMATCH")
    refused = sorted(scope for scope in wanted if scope not in allowed_set)
    if refused:
        raise PermissionDenied(f"scopes not granted to this caller: {', '.join(refused)}",
                               reason="SCOPE_NOT_ALLOWED", metadata={"refused_scopes": " ".join(refused)})
    return tuple(sorted(set(wanted)))
