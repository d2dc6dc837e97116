"""The registry builds connectors from configuration and stops start-up with one line naming a bad key."""

from __future__ import annotations

import pytest

from payment_service.adapters.connector_registry import ConnectorRegistry, default_sandbox_config
from payment_service.adapters.connectors.portal_standard import PortalStandardConnector
from servicekit.errors import NotFound
from servicekit.settings import StartupError

BANKS = ("vietcombank", "vietinbank", "bidv", "agribank", "mb", "vnptpay")


def test_the_default_points_every_connector_at_its_sandbox_port():
    config = default_sandbox_config("10.0.0.5")
    expected_ports = {"vnpay": 8101, "momo": 8102, "payoo": 8103, "nganluong": 8104, "vietcombank": 8105,
                      "vietinbank": 8106, "bidv": 8107, "agribank": 8108, "mb": 8109, "vnptpay": 8110,
                      "vietqr": 8111}
    assert {code: entry["base_url"] for code, entry in config.items()} == {
        code: f"http://10.0.0.5:{port}" for code, port in expected_ports.items()}
    assert all(config[bank]["type"] == "portal_standard" for bank in BANKS)
    assert len({config[bank]["bank_public_key"] for bank in BANKS}) == len(BANKS)   # one key pair per bank


def test_banks_are_configured_instances_of_one_connector():
    registry = ConnectorRegistry.from_config(default_sandbox_config())
    assert registry.codes() == list(default_sandbox_config())
    for bank in BANKS:
        connector = registry.get(bank)
        assert connector is not None and type(connector.inner) is PortalStandardConnector
    assert registry.get("vietcombank").info.display_name == "Vietcombank"  # type: ignore[union-attr]
    assert registry.get("vnptpay").info.channel == "wallet"  # type: ignore[union-attr]
    assert registry.get("nowhere") is None
    with pytest.raises(NotFound):
        registry.require("nowhere")
    assert registry.is_available("bidv") and not registry.is_available("nowhere")
    assert {health.code for health in registry.health()} == set(registry.codes())


@pytest.mark.parametrize(("change", "setting"), [
    (lambda c: c["vnpay"].pop("hash_secret"), "connectors.vnpay.hash_secret"),
    (lambda c: c["momo"].update(secret_key=""), "connectors.momo.secret_key"),
    (lambda c: c["bidv"].update(bank_public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
     "connectors.bidv.bank_public_key"),
    (lambda c: c["mb"].update(platform_private_key="not a key"), "connectors.mb.platform_private_key"),
    (lambda c: c["payoo"].update(timeout_seconds=30), "connectors.payoo.timeout_seconds"),
    (lambda c: c["payoo"].update(base_url="ftp://payoo"), "connectors.payoo.base_url"),
    (lambda c: c["nganluong"].update(type="paypal"), "connectors.nganluong.type"),
    (lambda c: c.update({"Bad Code": {"type": "vnpay"}}), "connectors.Bad Code"),
])
def test_a_bad_entry_stops_start_up_naming_the_key(change, setting):
    config = default_sandbox_config()
    change(config)
    with pytest.raises(StartupError) as failure:
        ConnectorRegistry.from_config(config)
    assert failure.value.setting == setting
    assert "\n" not in str(failure.value) and setting in str(failure.value)


def test_secrets_come_from_the_environment_or_a_file(tmp_path):
    config = default_sandbox_config()
    secret = config["vnpay"].pop("hash_secret")
    config["vnpay"]["hash_secret_env"] = "TEST_VNPAY_SECRET"
    key_file = tmp_path / "momo.key"
    key_file.write_text(config["momo"].pop("secret_key") + "\n")
    config["momo"]["secret_key_file"] = str(key_file)
    registry = ConnectorRegistry.from_config(config, environ={"TEST_VNPAY_SECRET": secret})
    assert registry.get("vnpay") is not None and registry.get("momo") is not None
    with pytest.raises(StartupError) as failure:
        ConnectorRegistry.from_config(config, environ={})
    assert failure.value.setting == "connectors.vnpay.hash_secret_env"


def test_callbacks_default_to_the_platform_route_of_each_code():
    registry = ConnectorRegistry.from_config(default_sandbox_config(),
                                             callback_base_url="https://dvc.example/callbacks/")
    momo = registry.get("momo")
    assert momo is not None and momo.inner.ipn_url == "https://dvc.example/callbacks/momo"  # type: ignore[attr-defined]
