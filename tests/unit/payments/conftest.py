"""Fixtures of the payment unit tests: the services wired to in-memory fakes."""

from __future__ import annotations

import pytest
from payments_fakes import World, make_world


@pytest.fixture
def world() -> World:
    return make_world()
