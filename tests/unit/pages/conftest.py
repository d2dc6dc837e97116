"""Fixtures of the page unit tests: the wallet pages over fakes, and the payment service over its in-memory fakes
(the payment area's own, reused rather than copied)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pages_fakes import FakeIdentity, FakeWallet

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "payments"))


@pytest.fixture
def identity() -> FakeIdentity:
    return FakeIdentity()


@pytest.fixture
def wallet() -> FakeWallet:
    return FakeWallet()
