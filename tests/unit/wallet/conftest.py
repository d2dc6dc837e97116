"""Fixtures of the wallet's unit tests: handlers wired to fakes (see wallet_fakes.py)."""

from __future__ import annotations

import pytest
from wallet_fakes import Wallet, make_wallet


@pytest.fixture
def wallet() -> Wallet:
    return make_wallet()
