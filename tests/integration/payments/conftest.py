"""Fixtures of the payment integration tests: one service per module on a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from payments_it import SECRET, Platform, Receiver, start_platform

from servicekit.http_edge import start_http
from servicekit.testing import fresh_postgres_url


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    own = Receiver([SECRET])
    own.http = start_http(own.app(), port=0, name="agency-receiver")
    yield own
    own.http.stop()


@pytest.fixture(scope="module")
def platform(receiver: Receiver) -> Iterator[Platform]:
    running = start_platform(fresh_postgres_url("payit"), receiver)
    yield running
    running.channel.close()
    running.running.stop(grace_seconds=0.5)
