"""Fixtures for connector unit tests: a requests session whose transport answers from the test."""

from __future__ import annotations

import pytest
import requests
from connector_testkit import CannedTransport


@pytest.fixture
def transport() -> CannedTransport:
    return CannedTransport()


@pytest.fixture
def session(transport: CannedTransport) -> requests.Session:
    session = requests.Session()
    session.mount("http://", transport)
    session.mount("https://", transport)
    return session
