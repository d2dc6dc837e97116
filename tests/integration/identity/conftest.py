"""Identity integration fixtures: the sandbox providers (once per session) and the service (once per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from identity_support import Identity, Sandboxes, start_sandboxes, start_service, stop_service


@pytest.fixture(scope="session")
def sandboxes() -> Iterator[Sandboxes]:
    started = start_sandboxes()
    yield started
    started.vneid.stop()
    started.agency.stop()


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory, sandboxes: Sandboxes) -> Iterator[Identity]:
    service = start_service(tmp_path_factory.mktemp("identity"), sandboxes)
    yield service
    stop_service(service)
