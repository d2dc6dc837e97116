"""The JWKS cache refetches on unknown kids at most once per interval and keeps the last good keys."""

from __future__ import annotations

from typing import Any

import pytest

from servicekit.auth import JwksCache
from servicekit.errors import Unauthenticated
from servicekit.testing import LocalTokenIssuer, ManualClock


class CountingFetch:
    """A JWKS endpoint whose answer the test controls; counts how often it is asked."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.calls = 0
        self.fail = False

    def __call__(self) -> dict[str, Any]:
        self.calls += 1
        if self.fail:
            raise ConnectionError("identity is down")
        return self.document


def test_a_flood_of_unknown_kids_fetches_at_most_once_per_interval():
    issuer = LocalTokenIssuer()
    fetch = CountingFetch(issuer.jwks())
    clock = ManualClock(1000.0)
    cache = JwksCache(fetch, refresh_seconds=300, min_refetch_seconds=10, clock=clock)
    cache.key_for(issuer.kid)
    for attempt in range(500):
        with pytest.raises(Unauthenticated):
            cache.key_for(f"made-up-{attempt}")
    assert fetch.calls == 1
    clock.now += 11
    with pytest.raises(Unauthenticated):
        cache.key_for("made-up-again")
    assert fetch.calls == 2


def test_a_rotated_key_is_picked_up_on_its_first_use():
    old, new = LocalTokenIssuer(), LocalTokenIssuer()
    fetch = CountingFetch(old.jwks())
    clock = ManualClock(1000.0)
    cache = JwksCache(fetch, refresh_seconds=300, min_refetch_seconds=10, clock=clock)
    cache.key_for(old.kid)
    fetch.document = {"keys": old.jwks()["keys"] + new.jwks()["keys"]}
    clock.now += 10
    assert cache.key_for(new.kid).key_id == new.kid
    assert cache.key_for(old.kid).key_id == old.kid


def test_last_good_keys_survive_a_failed_refresh():
    issuer = LocalTokenIssuer()
    fetch = CountingFetch(issuer.jwks())
    clock = ManualClock(1000.0)
    cache = JwksCache(fetch, refresh_seconds=60, min_refetch_seconds=10, clock=clock)
    cache.key_for(issuer.kid)
    fetch.fail = True
    clock.now += 61
    assert cache.key_for(issuer.kid).key_id == issuer.kid
    assert fetch.calls == 2
    assert "identity is down" in cache.last_error


def test_keys_for_algorithms_outside_the_allow_list_are_ignored():
    issuer = LocalTokenIssuer()
    document = issuer.jwks()
    document["keys"][0]["alg"] = "ES384"
    document["keys"][0]["crv"] = "P-384"
    cache = JwksCache(lambda: document, min_refetch_seconds=0)
    with pytest.raises(Unauthenticated):
        cache.key_for(issuer.kid)


def test_callers_arriving_during_the_first_fetch_wait_for_it_instead_of_failing():
    import threading
    import time as real_time

    issuer = LocalTokenIssuer()
    started = threading.Event()

    def slow_fetch() -> dict[str, Any]:
        started.set()
        real_time.sleep(0.3)
        return issuer.jwks()

    cache = JwksCache(slow_fetch, refresh_seconds=300, min_refetch_seconds=10)
    results: list[str] = []

    def verify() -> None:
        try:
            results.append(cache.key_for(issuer.kid).key_id)
        except Unauthenticated as refused:
            results.append(refused.reason)

    first = threading.Thread(target=verify)
    first.start()
    started.wait(5)
    others = [threading.Thread(target=verify) for _ in range(8)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(5)
    assert results == [issuer.kid] * 9
