"""Suite-wide fixtures: the real PostgreSQL and S3 servers that `make test` starts."""

from __future__ import annotations

import os
import uuid

import pytest


def _require(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        # Integration tests must not be silently skipped: running them without servers is a setup error.
        pytest.fail(f"{variable} is not set: run the suite with `make test`, which starts PostgreSQL and SeaweedFS")
    return value


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    """URL of the test PostgreSQL server's maintenance database."""
    return _require("DVC_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def s3_settings() -> dict[str, str]:
    """Endpoint and credentials of the test SeaweedFS S3 server."""
    return {
        "endpoint": _require("DVC_TEST_S3_ENDPOINT"),
        "access_key": _require("DVC_TEST_S3_ACCESS_KEY"),
        "secret_key": _require("DVC_TEST_S3_SECRET_KEY"),
    }


@pytest.fixture
def unique_name() -> str:
    """A lowercase name no other test uses (databases, buckets)."""
    return f"t{uuid.uuid4().hex[:12]}"
