"""The deny-list every service checks: fetched before the first judgement, then refreshed without making a
request wait on identity, one fetch at a time, keeping the last good list when identity fails."""

from __future__ import annotations

import threading
from typing import Any

from servicekit.auth import RevocationList
from servicekit.testing import ManualClock


class Identity:
    """The published list, with a gate that holds a fetch until the test lets it finish."""

    def __init__(self, *revoked: str) -> None:
        self.revoked = list(revoked)
        self.fetches = 0
        self.gate = threading.Event()
        self.gate.set()
        self.fetched = threading.Event()
        self.failing = False

    def __call__(self) -> dict[str, Any]:
        self.fetches += 1
        self.gate.wait(5)
        self.fetched.set()
        if self.failing:
            raise OSError("identity unreachable")
        return {"revoked_jtis": list(self.revoked)}


def test_the_first_check_waits_for_the_list():
    identity = Identity("stolen")
    revocations = RevocationList(identity, refresh_seconds=5.0, clock=ManualClock(100.0))
    assert revocations.is_revoked("stolen")
    assert not revocations.is_revoked("fine")
    assert identity.fetches == 1


def test_a_stale_list_is_refreshed_in_the_background_while_requests_go_on():
    identity, clock = Identity(), ManualClock(100.0)
    revocations = RevocationList(identity, refresh_seconds=5.0, clock=clock)
    assert not revocations.is_revoked("stolen")
    identity.revoked.append("stolen")
    identity.gate.clear()
    identity.fetched.clear()
    clock.now += 6
    # Identity is slow now: the request is answered from the last list without waiting for it.
    assert not revocations.is_revoked("stolen")
    assert not revocations.is_revoked("stolen")
    assert identity.fetches == 2  # one refresh under way, not one per request
    identity.gate.set()
    assert identity.fetched.wait(5)
    for _ in range(100):
        if revocations.is_revoked("stolen"):
            break
        threading.Event().wait(0.01)
    assert revocations.is_revoked("stolen")


def test_a_failed_refresh_keeps_the_last_list_and_says_why():
    identity, clock = Identity("stolen"), ManualClock(100.0)
    revocations = RevocationList(identity, refresh_seconds=5.0, clock=clock)
    assert revocations.is_revoked("stolen")
    identity.failing = True
    identity.fetched.clear()
    clock.now += 6
    assert revocations.is_revoked("stolen")
    assert identity.fetched.wait(5)
    for _ in range(100):
        if revocations.last_error:
            break
        threading.Event().wait(0.01)
    assert revocations.is_revoked("stolen")
    assert "identity unreachable" in revocations.last_error


def test_without_an_interval_every_check_reads_the_list_now():
    identity = Identity()
    revocations = RevocationList(identity, refresh_seconds=0.0, clock=ManualClock(100.0))
    assert not revocations.is_revoked("stolen")
    identity.revoked.append("stolen")
    assert revocations.is_revoked("stolen")
