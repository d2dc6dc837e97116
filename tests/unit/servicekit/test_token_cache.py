"""The memo of verified tokens never outlives a token's expiry and stays bounded."""

from __future__ import annotations

from servicekit.auth import Principal
from servicekit.testing import ManualClock
from servicekit.token_cache import VerifiedTokens


def principal(expires_at: int) -> Principal:
    return Principal(subject="hcm-dossier-system", kind="client", token_id="j", expires_at=expires_at,
                     claims={"aud": "dvc-payments"})


def test_a_hit_within_lifetime_and_leeway() -> None:
    clock = ManualClock(1_000.0)
    memo = VerifiedTokens(leeway_seconds=30, clock=clock)
    memo.put("t", principal(1_100))
    assert memo.get("t") is not None
    clock.now = 1_130
    assert memo.get("t") is not None


def test_an_expired_token_is_forgotten_so_full_verification_refuses_it() -> None:
    clock = ManualClock(1_000.0)
    memo = VerifiedTokens(leeway_seconds=30, clock=clock)
    memo.put("t", principal(1_100))
    clock.now = 1_131
    assert memo.get("t") is None
    assert len(memo) == 0


def test_the_oldest_entries_make_room() -> None:
    memo = VerifiedTokens(size=2, clock=ManualClock(1_000.0))
    for name in ("a", "b", "c"):
        memo.put(name, principal(2_000))
    assert memo.get("a") is None and memo.get("c") is not None and len(memo) == 2
