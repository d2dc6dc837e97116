"""Identity's repositories on both databases it runs on (PostgreSQL, and SQLite for `make run`), on a schema built
by its migrations: how long revoked tokens stay deny-listed, which tokens a delegation's revocation reaches, and
the agencies a provider may assert (none for an entry stored before that list existed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from identity_service.adapters import orm
from identity_service.adapters.repositories import RefreshRow
from identity_service.bootstrap import MIGRATIONS, SPEC
from identity_service.domain.consent import Delegation
from identity_service.domain.providers import ClaimMapping, Provider, map_claims
from identity_service.service_layer.unit_of_work import IdentityUnitOfWork
from servicekit.auth import MAX_LEEWAY_SECONDS
from servicekit.db import make_engine, session_factory
from servicekit.errors import Unauthenticated
from servicekit.testing import fresh_postgres_url

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
INSIDE_LEEWAY = NOW - timedelta(seconds=MAX_LEEWAY_SECONDS - 5)  # expired, yet some verifier still accepts it
PAST_LEEWAY = NOW - timedelta(seconds=MAX_LEEWAY_SECONDS + 5)  # no verifier accepts it any more


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = fresh_postgres_url("identity_repos") if request.param == "postgresql" else \
        f"sqlite:///{tmp_path / 'identity.sqlite3'}"
    created = make_engine(url)
    yield created
    created.dispose()


def migrate(engine: Engine, revision: str = "head") -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = SPEC.version_table
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def unit_of_work(engine: Engine) -> IdentityUnitOfWork:
    return IdentityUnitOfWork(session_factory(engine))


def delegation(delegation_id: str) -> Delegation:
    return Delegation(delegation_id, "001085000101", "agency", "HN", "consent", ("dvc-wallet",), "", NOW,
                      NOW + timedelta(days=30), "001085000101")


def test_a_revoked_token_is_published_until_no_verifier_accepts_it(engine: Engine) -> None:
    migrate(engine)
    with unit_of_work(engine) as uow:
        uow.revocations.add("inside-leeway", INSIDE_LEEWAY, NOW, "test")
        uow.revocations.add("past-leeway", PAST_LEEWAY, NOW, "test")
        uow.commit()
    with unit_of_work(engine) as uow:
        assert uow.revocations.active(NOW) == ["inside-leeway"]


def test_ending_a_family_reaches_access_tokens_still_inside_the_leeway(engine: Engine) -> None:
    migrate(engine)
    with unit_of_work(engine) as uow:
        for jti, access_expires_at in (("inside-leeway", INSIDE_LEEWAY), ("past-leeway", PAST_LEEWAY)):
            uow.refresh_tokens.add(RefreshRow(
                token_hash=f"hash-{jti}", family_id="family", subject="001085000101", kind="citizen", session={},
                default_audience="dvc-identity", created_at=NOW, expires_at=LATER, family_expires_at=LATER,
                access_jti=jti, access_expires_at=access_expires_at))
        assert uow.refresh_tokens.revoke_family("family", NOW) == [("inside-leeway", INSIDE_LEEWAY)]


def test_revoking_a_delegation_reaches_only_its_own_tokens_a_verifier_may_still_accept(engine: Engine) -> None:
    migrate(engine)
    with unit_of_work(engine) as uow:
        uow.delegations.add(delegation("revoked"), None)
        uow.delegations.add(delegation("kept"), None)
        for delegation_id, jti, expires_at in (("revoked", "live", LATER), ("revoked", "inside-leeway", INSIDE_LEEWAY),
                                               ("revoked", "past-leeway", PAST_LEEWAY), ("kept", "other", LATER)):
            uow.delegations.record_token(delegation_id, jti, expires_at)
        uow.commit()
    with unit_of_work(engine) as uow:
        reached = uow.delegations.revoke("revoked", NOW)
        uow.commit()
    assert sorted(reached) == [("inside-leeway", INSIDE_LEEWAY), ("live", LATER)]
    with unit_of_work(engine) as uow:
        ended, kept = uow.delegations.get("revoked"), uow.delegations.get("kept")
    assert ended is not None and ended.revoked_at == NOW
    assert kept is not None and kept.revoked_at is None


def test_a_provider_stored_before_agency_lists_existed_may_assert_no_agency(engine: Engine) -> None:
    migrate(engine, "0002")
    with engine.begin() as connection:
        connection.execute(insert(orm.identity_providers).values(
            provider_id="old-official", kind="official", display_name="", issuer="https://sso.hcm.example",
            discovery_url="https://sso.hcm.example/.well-known/openid-configuration", client_id="portal",
            audience="", client_secret_encrypted=None, allowed_algorithms=["ES256"],
            claim_mapping={"national_id": "cccd", "agency": "org"}, upstream_scopes=["openid"], default_level=2,
            role_scopes={}, source="admin", updated_at=NOW))
    migrate(engine)
    with unit_of_work(engine) as uow:
        stored = uow.providers.get("old-official", lambda blob, provider_id: "")
    assert stored is not None and stored.allowed_agencies == ()
    with pytest.raises(Unauthenticated) as caught:
        map_claims(stored, {"cccd": "079075001001", "org": "HCM"})
    assert caught.value.reason == "UPSTREAM_AGENCY_NOT_ALLOWED"


def test_a_providers_agency_list_is_stored(engine: Engine) -> None:
    migrate(engine)
    provider = Provider(provider_id="hcm", kind="official", issuer="https://sso.hcm.example", client_id="portal",
                        discovery_url="https://sso.hcm.example/.well-known/openid-configuration", default_level=2,
                        claim_mapping=ClaimMapping(national_id="cccd", agency="org"),
                        allowed_agencies=("HCM", "STP-HCM"))
    with unit_of_work(engine) as uow:
        uow.providers.upsert(provider, None, NOW)
        uow.commit()
    with unit_of_work(engine) as uow:
        stored = uow.providers.get("hcm", lambda blob, provider_id: "")
    assert stored is not None and stored.allowed_agencies == ("HCM", "STP-HCM")
