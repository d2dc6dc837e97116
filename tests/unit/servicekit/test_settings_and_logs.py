"""Settings come from the environment with one-line errors; logs mask secrets."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from servicekit.config import ServiceSettings
from servicekit.logs import scrub
from servicekit.settings import SettingsError, describe, load_settings, setting


@dataclass(frozen=True)
class DemoSettings(ServiceSettings):
    """A service's settings with one extra field."""

    callback_timeout_seconds: float = setting(10.0, "how long to wait for the agency")
    channels: tuple[str, ...] = setting(("vietqr",), "enabled channels")


def test_defaults_apply_with_no_environment():
    settings = load_settings(DemoSettings, "DEMO", {})
    assert settings.grpc_port == 0
    assert settings.callback_timeout_seconds == 10.0
    assert settings.auto_migrate is True


def test_values_are_read_with_the_prefix_and_typed():
    settings = load_settings(DemoSettings, "DEMO", {"DEMO_GRPC_PORT": "50052", "DEMO_AUTO_MIGRATE": "false",
                                                    "DEMO_CHANNELS": "vnpay, momo", "GRPC_PORT": "1"})
    assert settings.grpc_port == 50052
    assert settings.auto_migrate is False
    assert settings.channels == ("vnpay", "momo")


@pytest.mark.parametrize(("variable", "value", "hint"), [
    ("DEMO_GRPC_PORT", "fifty", "whole number"),
    ("DEMO_AUTO_MIGRATE", "maybe", "true or false"),
    ("DEMO_CALLBACK_TIMEOUT_SECONDS", "soon", "number"),
])
def test_a_malformed_value_names_the_variable(variable, value, hint):
    with pytest.raises(SettingsError) as failure:
        load_settings(DemoSettings, "DEMO", {variable: value})
    assert str(failure.value).startswith(f"{variable}: ")
    assert hint in str(failure.value)


def test_secret_settings_show_no_default_in_documentation():
    rows = {name: default for name, default, _ in describe(DemoSettings, "DEMO")}
    assert rows["DEMO_DATABASE_URL"] == "(secret)"
    assert rows["DEMO_GRPC_PORT"] == "0"


@pytest.mark.parametrize("leaky", [
    "Authorization: Bearer abc.def.ghi",
    "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl issued",
    "vnp_SecureHash=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    '{"secretKey": "K951B6PE1waDMi640xX08PD3vg6EkVlz"}',
    "beneficiary account 0071000123456",
])
def test_scrub_masks_secrets_tokens_and_account_numbers(leaky):
    cleaned = scrub(leaky)
    for secret in ("abc.def.ghi", "eyJhbGciOiJFUzI1NiJ9", "9f86d081884c7d65", "K951B6PE1waDMi640xX08PD3vg6EkVlz",
                   "0071000123456"):
        assert secret not in cleaned


def test_scrub_keeps_the_last_four_digits_for_support():
    assert scrub("account 0071000123456").endswith("3456")
