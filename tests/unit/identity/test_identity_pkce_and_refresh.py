"""PKCE S256 against RFC 7636's own example, and refresh-token rotation with reuse detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from identity_service.domain import pkce
from identity_service.domain.refresh import RefreshState, Verdict, judge, next_expiry, refusal, token_hash
from servicekit.errors import Unauthenticated

# RFC 7636, Appendix B.
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
NOW = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_s256_challenge_matches_the_rfc_example() -> None:
    assert pkce.s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE
    pkce.check(RFC_VERIFIER, RFC_CHALLENGE)


def test_a_wrong_verifier_is_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        pkce.check(pkce.new_verifier(), RFC_CHALLENGE)
    assert caught.value.reason == "PKCE_MISMATCH"


@pytest.mark.parametrize("verifier", ["short", RFC_VERIFIER + "!", "x" * 129, ""])
def test_a_malformed_verifier_is_refused(verifier: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        pkce.check(verifier, RFC_CHALLENGE)
    assert caught.value.reason == "PKCE_VERIFIER_MALFORMED"


def test_the_plain_method_is_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        pkce.check(RFC_VERIFIER, RFC_VERIFIER, method="plain")
    assert caught.value.reason == "PKCE_METHOD_NOT_ALLOWED"


def test_new_verifiers_are_valid_and_distinct() -> None:
    first, second = pkce.new_verifier(), pkce.new_verifier()
    assert pkce.is_valid_verifier(first) and first != second


def state(**changes: object) -> RefreshState:
    values: dict[str, object] = {"family_id": "f", "expires_at": NOW + timedelta(hours=1),
                                 "family_expires_at": NOW + timedelta(hours=4)}
    values.update(changes)
    return RefreshState(**values)  # type: ignore[arg-type]


def test_an_unused_live_token_rotates() -> None:
    assert judge(state(), NOW) is Verdict.VALID


def test_a_used_token_presented_again_is_reuse() -> None:
    assert judge(state(used_at=NOW - timedelta(minutes=1)), NOW) is Verdict.REUSED
    assert refusal(Verdict.REUSED).reason == "REFRESH_TOKEN_REUSED"


def test_reuse_wins_over_expiry_so_a_stolen_old_token_still_ends_the_family() -> None:
    assert judge(state(used_at=NOW - timedelta(hours=2), expires_at=NOW - timedelta(hours=1)), NOW) is Verdict.REUSED


def test_a_revoked_family_stays_revoked() -> None:
    assert judge(state(used_at=NOW, revoked_at=NOW), NOW) is Verdict.REVOKED
    assert refusal(Verdict.REVOKED).reason == "REFRESH_TOKEN_REVOKED"


def test_expiry_of_the_token_or_the_family() -> None:
    assert judge(state(expires_at=NOW), NOW) is Verdict.EXPIRED
    assert judge(state(family_expires_at=NOW - timedelta(seconds=1)), NOW) is Verdict.EXPIRED


def test_a_rotated_token_never_outlives_the_family() -> None:
    family_end = NOW + timedelta(minutes=30)
    assert next_expiry(NOW, timedelta(hours=8), family_end) == family_end
    assert next_expiry(NOW, timedelta(minutes=5), family_end) == NOW + timedelta(minutes=5)


def test_only_a_hash_of_the_token_is_kept() -> None:
    import hashlib

    assert token_hash("dvcrt_abc") == hashlib.sha256(b"dvcrt_abc").hexdigest()
