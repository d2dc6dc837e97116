"""Fixtures of the connector integration tests: every sandbox and a callback receiver, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from connectors_it import World, start_world


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    running = start_world()
    yield running
    running.stop()
