"""Builds every connector from configuration, checks their credentials at start-up and hands them out behind their
circuit breakers; `default_sandbox_config` points each one at its sandbox."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from payment_service.adapters.circuit_breaker import BreakerConnector, BreakerState, CircuitBreaker, ConnectorHealth
from payment_service.adapters.connectors.base import Clock, ConfigEntry, CredentialError, utc_now
from payment_service.adapters.connectors.momo import MomoConnector
from payment_service.adapters.connectors.nganluong import NganLuongConnector
from payment_service.adapters.connectors.payoo import PayooConnector
from payment_service.adapters.connectors.portal_standard import PortalStandardConnector, private_key_pem, public_key_pem
from payment_service.adapters.connectors.vietqr_transfer import VietQrTransferConnector
from payment_service.adapters.connectors.vnpay import VnpayConnector
from payment_service.domain.connector import Connector, ConnectorError
from payment_service.sandbox import catalog
from servicekit.errors import NotFound
from servicekit.settings import StartupError

CONNECTOR_TYPES: dict[str, Callable[..., Connector]] = {
    "vnpay": VnpayConnector,
    "momo": MomoConnector,
    "payoo": PayooConnector,
    "nganluong": NganLuongConnector,
    "portal_standard": PortalStandardConnector,
    "vietqr": VietQrTransferConnector,
}
_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")
CONFIG_ROOT = "connectors"


class ConnectorRegistry:
    """The configured connectors by code, each wrapped in its circuit breaker."""

    def __init__(self, connectors: Mapping[str, BreakerConnector]) -> None:
        self._connectors = dict(connectors)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, callback_base_url: str = catalog.DEFAULT_NOTIFY_URL_BASE,
                    clock: Clock = utc_now, breaker_clock: Callable[[], float] = time.monotonic,
                    failure_threshold: int = 5, cooldown_seconds: float = 30.0,
                    environ: Mapping[str, str] | None = None,
                    session: requests.Session | None = None) -> ConnectorRegistry:
        """Build and check every connector; the first bad entry stops start-up with one line naming its key
        (``connectors.<code>.<key>``). ``notify_url`` defaults to ``<callback_base_url>/<code>``."""
        if not isinstance(config, Mapping):
            raise StartupError(CONFIG_ROOT, "the connector configuration must be a mapping of code to settings")
        connectors = {}
        for code, entry in config.items():
            where = f"{CONFIG_ROOT}.{code}"
            if not isinstance(code, str) or not _CODE.fullmatch(code):
                raise StartupError(where, "a connector code is 2-32 lowercase letters, digits or '_'")
            if not isinstance(entry, Mapping):
                raise StartupError(where, "must be a mapping of settings")
            factory = CONNECTOR_TYPES.get(str(entry.get("type", "")))
            if factory is None:
                raise StartupError(f"{where}.type", f"unknown connector type {entry.get('type')!r} "
                                                    f"(one of {', '.join(sorted(CONNECTOR_TYPES))})")
            values = {"notify_url": f"{callback_base_url.rstrip('/')}/{code}", **entry}
            connector = factory(code, ConfigEntry(code, values, environ), clock=clock, session=session)
            try:
                connector.check_credentials()
            except CredentialError as error:
                raise StartupError(f"{where}.{error.field}", f"connector {code}: {error.field} {error.problem}"
                                   ) from None
            except ConnectorError as error:
                raise StartupError(where, f"connector {code}: {error}") from None
            try:
                threshold = int(entry.get("failure_threshold", failure_threshold))
                cooldown = float(entry.get("cooldown_seconds", cooldown_seconds))
            except (TypeError, ValueError):
                raise StartupError(where, f"connector {code}: failure_threshold and cooldown_seconds must be numbers"
                                   ) from None
            breaker = CircuitBreaker(code, clock=breaker_clock, failure_threshold=max(threshold, 1),
                                     cooldown_seconds=cooldown)
            connectors[code] = BreakerConnector(connector, breaker, clock=clock)
        return cls(connectors)

    def get(self, code: str) -> BreakerConnector | None:
        """The connector configured as ``code``, or None (the core's ConnectorLookup port)."""
        return self._connectors.get(code)

    def require(self, code: str) -> BreakerConnector:
        connector = self._connectors.get(code)
        if connector is None:
            raise NotFound(f"no connector {code!r} is configured", reason="CONNECTOR_NOT_FOUND",
                           metadata={"connector": code})
        return connector

    def is_available(self, code: str) -> bool:
        """False while the connector's circuit is open (the core's Availability port); half-open is available,
        so the next call is the probe."""
        connector = self._connectors.get(code)
        return connector is not None and connector.breaker.state is not BreakerState.OPEN

    def all(self) -> list[BreakerConnector]:
        return list(self._connectors.values())

    def codes(self) -> list[str]:
        return list(self._connectors)

    def health(self) -> list[ConnectorHealth]:
        return [connector.health() for connector in self._connectors.values()]


def default_sandbox_config(base_host: str = "127.0.0.1", *, ports: Mapping[str, int] | None = None,
                           return_url: str = catalog.DEFAULT_RETURN_URL,
                           timeout_seconds: float = 10.0) -> dict[str, dict[str, Any]]:
    """The embedded zero-configuration default: every connector pointed at its sandbox (ports 8101-8111 unless
    ``ports`` says otherwise) with the sandbox's published test credentials."""
    port = {**catalog.SANDBOX_PORTS, **(ports or {})}

    def url(code: str) -> str:
        return f"http://{base_host}:{port[code]}"

    config: dict[str, dict[str, Any]] = {
        "vnpay": {"type": "vnpay", "base_url": url("vnpay"), "return_url": return_url, **catalog.VNPAY},
        "momo": {"type": "momo", "base_url": url("momo"), "return_url": return_url, **catalog.MOMO},
        "payoo": {"type": "payoo", "base_url": url("payoo"), "return_url": return_url, **catalog.PAYOO},
        "nganluong": {"type": "nganluong", "base_url": url("nganluong"), **catalog.NGANLUONG},
    }
    for bank in (*catalog.PORTAL_BANKS.values(), catalog.VIETQR_BANK):
        config[bank.code] = {
            "type": "vietqr" if bank is catalog.VIETQR_BANK else "portal_standard",
            "display_name": bank.display_name, "channel": bank.channel, "bank_bin": bank.bank_bin,
            "base_url": url(bank.code), "merchant_id": catalog.MERCHANT_ID,
            "platform_key_id": catalog.portal_key_id(bank.code, "platform"),
            "platform_private_key": private_key_pem(catalog.portal_key(bank.code, "platform")),
            "bank_key_id": catalog.portal_key_id(bank.code, "bank"),
            "bank_public_key": public_key_pem(catalog.portal_key(bank.code, "bank").public_key()),
        }
    for entry in config.values():
        entry["timeout_seconds"] = timeout_seconds
    return config

