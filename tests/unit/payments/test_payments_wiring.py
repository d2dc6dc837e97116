"""Wiring: connector configuration, production start-up checks, connector health from the circuit breakers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from payments_fakes import World

from payment_service.adapters.connector_registry import ConnectorRegistry, default_sandbox_config
from payment_service.bootstrap import PaymentSettings, check_dependencies, load_connectors
from payment_service.service_layer.services import PaymentServices
from servicekit.settings import StartupError


def test_the_embedded_default_configures_every_sandbox_connector_with_closed_breakers(world: World) -> None:
    registry = load_connectors(PaymentSettings())
    assert {"vnpay", "momo", "vietqr", "agribank"} <= set(registry.codes())
    services = PaymentServices(world.uow, clock=world.clock, connectors=registry, signer=world.signer,
                               availability=registry)
    views = {view.info.code: view for view in services.connector_health()}
    assert set(views) == set(registry.codes())
    assert all(view.available and view.breaker_state == "closed" for view in views.values())


def test_a_connectors_file_is_read_and_its_problems_name_the_setting(tmp_path: Path) -> None:
    good = tmp_path / "connectors.yaml"
    vnpay = default_sandbox_config()["vnpay"]
    good.write_text("connectors:\n  vnpay:\n" + "".join(f"    {k}: {v!r}\n" for k, v in vnpay.items()))
    assert load_connectors(PaymentSettings(connectors_file=str(good))).codes() == ["vnpay"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    with pytest.raises(StartupError) as refused:
        load_connectors(PaymentSettings(connectors_file=str(bad)))
    assert "PAYMENT_CONNECTORS_FILE" in str(refused.value)
    with pytest.raises(StartupError):
        load_connectors(PaymentSettings(connectors_file=str(tmp_path / "missing.yaml")))


def test_production_needs_its_connectors_the_receipt_key_and_wallet_credentials() -> None:
    # Without a connectors file the embedded sandbox credentials, which are public, would sign callbacks.
    with pytest.raises(StartupError) as refused:
        check_dependencies(PaymentSettings(environment="production"))
    assert "PAYMENT_CONNECTORS_FILE" in str(refused.value)
    production = PaymentSettings(environment="production", connectors_file="/etc/dvc/payment/connectors.yaml")
    with pytest.raises(StartupError) as refused:
        check_dependencies(production)
    assert "PAYMENT_RECEIPT_KEY_FILE" in str(refused.value)
    keyed = dataclasses.replace(production, receipt_key_file="/keys/receipts.pem")
    with pytest.raises(StartupError) as refused:
        check_dependencies(keyed)
    assert "PAYMENT_WALLET_ADDR" in str(refused.value)
    check_dependencies(dataclasses.replace(keyed, wallet_addr="wallet:50053", wallet_client_id="payments",
                                           wallet_client_secret="s"))
    check_dependencies(PaymentSettings())
    with pytest.raises(StartupError):
        check_dependencies(PaymentSettings(callback_timeout_seconds=30))


def test_a_secret_written_as_an_unexpanded_placeholder_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "connectors.yaml"
    path.write_text("connectors:\n  vnpay:\n    type: vnpay\n    tmn_code: DVCPORTAL\n"
                    "    base_url: https://sandbox.vnpayment.vn\n    return_url: https://dvc.example.vn/pay/return\n"
                    "    hash_secret: ${PAYMENT_CONNECTOR_VNPAY_HASH_SECRET}\n", encoding="utf-8")
    with pytest.raises(StartupError) as refused:
        load_connectors(PaymentSettings(connectors_file=str(path)))
    assert "hash_secret" in str(refused.value) and "_env" in str(refused.value)


def test_the_kubernetes_base_connectors_file_loads() -> None:
    registry = load_connectors(PaymentSettings(connectors_file="deploy/k8s/base/payment/connectors.yaml"))
    assert not registry.is_available("vnpay")   # none enabled until an overlay says which


def test_a_registry_is_a_lookup_and_an_availability() -> None:
    registry = ConnectorRegistry.from_config(default_sandbox_config())
    assert registry.is_available("vnpay") and not registry.is_available("nope")


@pytest.mark.parametrize("typo", ["prod", "Production", "staging", ""])
def test_an_unknown_environment_stops_start_up_instead_of_meaning_development(typo: str) -> None:
    with pytest.raises(StartupError) as stopped:
        check_dependencies(PaymentSettings(environment=typo))
    assert "PAYMENT_ENVIRONMENT" in str(stopped.value)
