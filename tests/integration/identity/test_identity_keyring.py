"""The key ring on a real database: a key from another replica is found at once, a flood of made-up kids costs
at most one reload per interval, rotation overlaps, and private keys are stored encrypted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from identity_service.adapters.crypto import KeyEncryptor
from identity_service.adapters.keyring import RETIRED_KEY_OVERLAP, Keyring
from identity_service.adapters.repositories import SigningKeyRepository
from identity_service.bootstrap import SPEC
from servicekit.db import make_engine, run_migrations, session_factory
from servicekit.testing import ManualClock

KEK = KeyEncryptor("keyring-test-key-encryption-key-0123456789")


def ring(tmp_path: Path, clock: ManualClock) -> tuple[Keyring, Any, list[int]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'keys.sqlite3'}")
    run_migrations(engine, SPEC.migrations_dir, SPEC.version_table)
    sessions = session_factory(engine)
    opened = [0]

    def counting_sessions() -> Any:
        opened[0] += 1
        return sessions()

    return Keyring(counting_sessions, KEK, clock=clock), sessions, opened  # type: ignore[arg-type]


def test_made_up_kids_cost_one_reload_per_interval(tmp_path: Path) -> None:
    clock = ManualClock()
    keyring, _, opened = ring(tmp_path, clock)
    keyring.ensure_signing_key()
    keyring.public_key(keyring.signing_key()[0])
    before = opened[0]
    assert all(keyring.public_key(f"made-up-{n}") is None for n in range(100))
    assert opened[0] - before == 1
    clock.now += 1.0
    keyring.public_key("made-up-again")
    assert opened[0] - before == 2


def test_a_key_added_by_another_replica_verifies_at_once(tmp_path: Path) -> None:
    clock = ManualClock()
    mine, sessions, _ = ring(tmp_path, clock)
    mine.ensure_signing_key()
    other = Keyring(sessions, KEK, clock=clock)
    with sessions() as session:
        row = other.rotate(SigningKeyRepository(session), timedelta(0), None)
        session.commit()
    assert mine.public_key(row.kid) is not None


def test_rotation_keeps_the_old_key_published_until_its_tokens_expire(tmp_path: Path) -> None:
    clock = ManualClock()
    keyring, sessions, _ = ring(tmp_path, clock)
    keyring.ensure_signing_key()
    old_kid, _ = keyring.signing_key()
    with sessions() as session:
        new = keyring.rotate(SigningKeyRepository(session), timedelta(0), None)
        session.commit()
    keyring.invalidate()
    assert keyring.signing_key()[0] == new.kid
    clock.now += RETIRED_KEY_OVERLAP.total_seconds() - 1
    keyring.invalidate()
    assert {old_kid, new.kid} <= {key["kid"] for key in keyring.jwks()["keys"]}
    clock.now += 2
    keyring.invalidate()
    assert [key["kid"] for key in keyring.jwks()["keys"]] == [new.kid]


def test_private_keys_are_stored_encrypted(tmp_path: Path) -> None:
    clock = ManualClock()
    keyring, sessions, _ = ring(tmp_path, clock)
    keyring.ensure_signing_key()
    with sessions() as session:
        (row,) = SigningKeyRepository(session).published(keyring.now())
    assert b"PRIVATE KEY" not in row.private_key_encrypted
    assert KEK.decrypt(row.private_key_encrypted, row.kid).startswith(b"-----BEGIN PRIVATE KEY-----")
