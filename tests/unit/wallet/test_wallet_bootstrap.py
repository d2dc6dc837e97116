"""Start-up choices of the wallet: the dev issuer keys, the HTTP probes."""

from __future__ import annotations

import pytest
from flask import Flask

from servicekit.health import install_http_probes
from servicekit.settings import StartupError
from wallet_service.bootstrap import WalletSettings, _seeds_dev_keys, dev_issuer_keys
from wallet_service.domain.manifest import load_public_key, sign, signature_verifies


def test_dev_keys_are_the_same_in_every_process_and_sign_verifiably():
    first, second = dev_issuer_keys(), dev_issuer_keys()
    assert set(first) >= {"STP-HCM", "CA-HCM", "DVC-PAYMENTS"}
    for code, key in first.items():
        assert key.public_key_pem == second[code].public_key_pem
        public_key = load_public_key(key.public_key_pem, key.algorithm)
        assert signature_verifies(public_key, b"manifest", sign(key.private_key, b"manifest"))
    assert first["DVC-PAYMENTS"].agency_kind == "FEE_COLLECTOR"


def test_dev_keys_are_seeded_in_development_only():
    assert _seeds_dev_keys(WalletSettings())
    assert not _seeds_dev_keys(WalletSettings(environment="production"))
    assert not _seeds_dev_keys(WalletSettings(dev_issuer_keys="false"))


def test_asking_for_dev_keys_in_production_stops_start_up_naming_the_setting():
    with pytest.raises(StartupError) as stopped:
        _seeds_dev_keys(WalletSettings(environment="production", dev_issuer_keys="true"))
    assert "WALLET_DEV_ISSUER_KEYS" in str(stopped.value)
    with pytest.raises(StartupError):
        _seeds_dev_keys(WalletSettings(dev_issuer_keys="maybe"))


def test_probes_report_each_failing_dependency():
    def broken() -> None:
        raise ConnectionError("down")

    def app_with(checks):
        app = Flask("wallet_service")
        install_http_probes(app, checks)
        return app.test_client()

    healthy = app_with({"database": lambda: None})
    assert healthy.get("/healthz").status_code == 200
    assert healthy.get("/readyz").status_code == 200
    sick = app_with({"database": lambda: None, "object_storage": broken})
    answer = sick.get("/readyz")
    assert answer.status_code == 503 and answer.get_json()["failing"] == {"object_storage": "ConnectionError"}
    assert sick.get("/healthz").status_code == 200


def test_replicas_starting_together_do_not_trip_over_the_seed():
    from servicekit.errors import Conflict
    from wallet_service.bootstrap import _despite_other_replicas

    attempts = []

    def seed_losing_once() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise Conflict("another replica inserted the row first", reason="CONCURRENT_CHANGE")

    _despite_other_replicas(seed_losing_once)
    assert len(attempts) == 2

    def always_losing() -> None:
        raise Conflict("stuck", reason="CONCURRENT_CHANGE")

    with pytest.raises(Conflict):
        _despite_other_replicas(always_losing)


@pytest.mark.parametrize("typo", ["prod", "Production", " production", "staging"])
def test_an_unknown_environment_stops_start_up_instead_of_seeding_the_public_dev_keys(typo):
    # With 'prod' read as development, the wallet would register issuer keys anyone can sign with.
    with pytest.raises(StartupError) as stopped:
        _seeds_dev_keys(WalletSettings(environment=typo))
    assert "WALLET_ENVIRONMENT" in str(stopped.value)
