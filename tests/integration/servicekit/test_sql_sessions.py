"""Web sessions in the database: shared by every replica of an edge, with the memory store's lifetimes."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from servicekit.db import make_engine, run_migrations
from servicekit.testing import ManualClock, fresh_postgres_url
from servicekit.web.sessions import (
    MemorySessionStore,
    SessionStore,
    WebSession,
    changes_since,
    data_snapshot,
)
from servicekit.web.sql_sessions import SessionCipher, SqlSessionStore, metadata, web_sessions
from wallet_service.bootstrap import SPEC as WALLET


@contextmanager
def _database(kind: str, tmp_path: Path) -> Iterator[Engine]:
    url = fresh_postgres_url("websessions") if kind == "postgresql" else f"sqlite:///{tmp_path}/web.db"
    made = make_engine(url)
    metadata.create_all(made)
    yield made
    made.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """PostgreSQL as deployed, and SQLite as `make run` uses it."""
    with _database(request.param, tmp_path) as made:
        yield made


def _session(clock: ManualClock, **data: object) -> WebSession:
    session = WebSession.fresh(clock())
    session.data.update(data)
    return session


def test_a_session_saved_by_one_replica_is_loaded_and_ended_by_another(engine: Engine) -> None:
    clock = ManualClock()
    first, second = SqlSessionStore(engine, clock=clock), SqlSessionStore(engine, clock=clock)
    session = _session(clock, user={"subject": "001099012345", "access_expires_at": 1_800_000_300.5})
    first.save(session)
    loaded = second.load(session.session_id)
    assert loaded is not None
    assert (loaded.csrf_token, loaded.data) == (session.csrf_token, session.data)
    assert second.load(session.session_id + "x") is None
    second.delete(session.session_id)
    assert first.load(session.session_id) is None


def test_the_table_holds_no_usable_session_id_and_no_token(engine: Engine) -> None:
    clock = ManualClock()
    store = SqlSessionStore(engine, cipher=SessionCipher([Fernet.generate_key().decode()]), clock=clock)
    session = _session(clock, user={"access_token": "eyJ-access-secret", "refresh_token": "refresh-secret"})
    store.save(session)
    with engine.connect() as connection:
        row = tuple(connection.execute(sa.select(web_sessions)).one())
    assert not any(secret in str(value) for value in row
                   for secret in (session.session_id, "eyJ-access-secret", "refresh-secret"))
    loaded = store.load(session.session_id)
    assert loaded is not None and loaded.data == session.data


def test_a_key_rotation_keeps_sessions_and_a_retired_key_ends_them(engine: Engine) -> None:
    clock = ManualClock()
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    before = SqlSessionStore(engine, cipher=SessionCipher.from_setting(old), clock=clock)
    during = SqlSessionStore(engine, cipher=SessionCipher.from_setting(f"{new}, {old}"), clock=clock)
    after = SqlSessionStore(engine, cipher=SessionCipher.from_setting(new), clock=clock)
    kept, idle = _session(clock, user={"subject": "kept"}), _session(clock, user={"subject": "idle"})
    before.save(kept)
    before.save(idle)
    reopened = during.load(kept.session_id)  # the new key list still opens what the old key sealed
    assert reopened is not None and reopened.data == kept.data
    during.save(reopened)  # and seals it again with the new key
    assert after.load(kept.session_id) is not None
    assert after.load(idle.session_id) is None  # sealed only with the retired key: ended, not an error
    assert during.load(idle.session_id) is None  # and its row is gone


def test_session_keys_must_be_fernet_keys() -> None:
    with pytest.raises(ValueError, match="URL-safe base64 of 32 bytes"):
        SessionCipher.from_setting("not-a-key")
    assert SessionCipher.from_setting("").open(SessionCipher.from_setting(" ").seal({"a": 1})) == {"a": 1}


def test_idle_sessions_end_and_activity_keeps_one_alive_with_a_write_a_minute(engine: Engine) -> None:
    clock = ManualClock()
    store = SqlSessionStore(engine, idle_seconds=1800, max_seconds=12 * 3600, touch_seconds=60, clock=clock)
    session = _session(clock)
    store.save(session)

    def stored_last_seen() -> float:
        with engine.connect() as connection:
            return float(connection.execute(sa.select(web_sessions.c.last_seen)).scalar_one())

    clock.now += 30
    assert store.load(session.session_id) is not None and stored_last_seen() == session.created_at
    clock.now += 1700  # 1,730 s after the last write, 1,700 s after the last read: still alive
    assert store.load(session.session_id) is not None and stored_last_seen() == clock.now
    clock.now += 1799
    assert store.load(session.session_id) is not None
    clock.now += 1801
    assert store.load(session.session_id) is None
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(web_sessions)).scalar_one() == 0


def test_a_session_ends_at_its_absolute_lifetime_however_busy(engine: Engine) -> None:
    clock = ManualClock()
    store = SqlSessionStore(engine, idle_seconds=1800, max_seconds=3600, clock=clock)
    session = _session(clock)
    store.save(session)
    for _ in range(3):
        clock.now += 1000
        assert store.load(session.session_id) is not None
    clock.now += 1000
    assert store.load(session.session_id) is None


def test_expired_sessions_are_pruned_every_so_many_saves(engine: Engine) -> None:
    clock = ManualClock()
    store = SqlSessionStore(engine, idle_seconds=100, prune_every=3, clock=clock)
    old = [_session(clock) for _ in range(2)]
    for session in old:
        store.save(session)
    clock.now += 500
    fresh = _session(clock)
    store.save(fresh)  # the third save prunes the two idle ones

    def ids() -> set[str]:
        with engine.connect() as connection:
            return set(connection.execute(sa.select(web_sessions.c.id_hash)).scalars())

    assert len(ids()) == 1 and store.load(fresh.session_id) is not None
    store.save(_session(clock))
    clock.now += 500
    assert store.prune() == 2 and ids() == set()


def test_the_wallet_migrations_create_the_table_the_store_uses() -> None:
    made = make_engine(fresh_postgres_url("walletsessions"))
    run_migrations(made, WALLET.migrations_dir, WALLET.version_table)
    clock = ManualClock()
    store = SqlSessionStore(made, clock=clock)
    session = _session(clock, login={"state": "abc", "next": "/", "at": clock()})
    store.save(session)
    loaded = store.load(session.session_id)
    made.dispose()
    assert loaded is not None and loaded.data == session.data


def test_the_refresh_lock_holds_one_session_and_lets_other_sessions_through(engine: Engine) -> None:
    clock = ManualClock()
    first, second = SqlSessionStore(engine, clock=clock), SqlSessionStore(engine, clock=clock)
    session, other = _session(clock), _session(clock)
    order: list[str] = []
    holding, released = threading.Event(), threading.Event()

    def hold() -> None:
        with first.exclusive(session.session_id):
            order.append("first in")
            holding.set()
            released.wait(10)
            order.append("first out")

    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(10)
    with second.exclusive(other.session_id):
        order.append("other session in")  # another session is not held up
    with_lock: list[str] = []

    def wait_for_it() -> None:
        with second.exclusive(session.session_id):
            with_lock.append(order[-1])

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not with_lock  # still waiting while the first replica holds it
    released.set()
    holder.join(10)
    waiter.join(10)
    assert order == ["first in", "other session in", "first out"] and with_lock == ["first out"]


def _hold_in_another_process(url: str, session_id: str, holding: Any, release: Any) -> None:
    store = SqlSessionStore(make_engine(url))
    with store.exclusive(session_id):
        holding.set()
        release.wait(20)


def test_the_refresh_lock_holds_against_a_replica_in_another_process() -> None:
    url = fresh_postgres_url("websessionlock")
    engine = make_engine(url)
    metadata.create_all(engine)
    store = SqlSessionStore(engine)
    context = multiprocessing.get_context("spawn")
    holding, release = context.Event(), context.Event()
    replica = context.Process(target=_hold_in_another_process, args=(url, "the-session", holding, release))
    replica.start()
    try:
        assert holding.wait(60)
        got: list[bool] = []

        def take_it() -> None:
            with store.exclusive("the-session"):
                got.append(True)

        waiter = threading.Thread(target=take_it)
        waiter.start()
        waiter.join(0.5)
        assert not got  # the other process holds it
        with store.exclusive("another-session"):
            pass
        release.set()
        waiter.join(20)
        assert got == [True]
    finally:
        release.set()
        replica.join(20)
        engine.dispose()


@pytest.fixture(params=["memory", "postgresql", "sqlite"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SessionStore, ManualClock]]:
    """The same contract from the memory store and the SQL store on each database."""
    clock = ManualClock()
    if request.param == "memory":
        yield MemorySessionStore(clock=clock), clock
        return
    with _database(request.param, tmp_path) as made:
        yield SqlSessionStore(made, clock=clock), clock


def test_a_request_that_read_the_session_earlier_does_not_undo_a_token_refresh(any_store) -> None:
    store, clock = any_store
    session = _session(clock, user={"access_token": "old", "refresh_token": "r1"}, verified={})
    store.save(session)
    slow = store.load(session.session_id)  # request B: loaded before the refresh
    assert slow is not None
    loaded = data_snapshot(slow.data)
    refreshing = store.load(session.session_id)  # request A refreshes the tokens and saves at once
    assert refreshing is not None
    refreshing.data["user"] = {"access_token": "new", "refresh_token": "r2"}
    store.save(refreshing)
    slow.data["verified"] = {"doc-1": ["VALID", clock()]}  # B changed only its cache...
    slow.data.pop("pending", None)
    store.merge(slow, *changes_since(loaded, slow.data))  # ...and writes only that
    stored = store.load(session.session_id)
    assert stored is not None
    assert stored.data["user"] == {"access_token": "new", "refresh_token": "r2"}
    assert stored.data["verified"] == {"doc-1": ["VALID", clock()]}


def test_a_merge_removes_what_the_request_removed_and_never_revives_an_ended_session(any_store) -> None:
    store, clock = any_store
    session = _session(clock, login={"state": "s"}, keep="me")
    store.save(session)
    loaded = store.load(session.session_id)
    assert loaded is not None
    snapshot = data_snapshot(loaded.data)
    del loaded.data["login"]
    store.merge(loaded, *changes_since(snapshot, loaded.data))
    stored = store.load(session.session_id)
    assert stored is not None and stored.data == {"keep": "me"}
    store.delete(session.session_id)  # logged out by another request meanwhile
    loaded.data["late"] = True
    store.merge(loaded, *changes_since(snapshot, loaded.data))
    assert store.load(session.session_id) is None
