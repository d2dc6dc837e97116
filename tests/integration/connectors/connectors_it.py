"""Support for connector integration tests: every sandbox in-process on port 0, a callback receiver mounting the
real callback routes with a recording stand-in for the core, and the registry pointed at them."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from flask import Flask

from payment_service.adapters.connector_registry import ConnectorRegistry, default_sandbox_config
from payment_service.domain.connector import CallbackOutcome, InboundNotification, PaymentOrder
from payment_service.domain.reference import new_reference
from payment_service.entrypoints.callbacks import callbacks_blueprint
from payment_service.sandbox import catalog
from payment_service.sandbox.common import Sandbox, sandbox_of
from payment_service.sandbox.run import RunningSandboxes, start_all
from servicekit.http_edge import RunningHttp, start_http

FAST_SETTINGS = {"retry_backoff_seconds": 0.05, "api_timeout_seconds": 1.5, "slow_callback_seconds": 0.5,
                 "delivery_timeout_seconds": 3.0}


@dataclass
class RecordingCore:
    """Stands in for the core's handle_notification: records verified notifications, answers ``outcome``."""

    outcome: CallbackOutcome = CallbackOutcome.ACCEPTED
    received: list[tuple[str, InboundNotification]] = field(default_factory=list)
    pulled: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, code: str, notification: InboundNotification) -> CallbackOutcome:
        with self.lock:
            self.received.append((code, notification))
        return self.outcome

    def pull(self, code: str, reference: str) -> None:
        with self.lock:
            self.pulled.append((code, reference))

    def about(self, reference: str) -> list[InboundNotification]:
        with self.lock:
            return [notification for _, notification in self.received if notification.reference == reference]


class LateRegistry:
    """The receiver is started before the registry exists (the sandboxes need its address first)."""

    registry: ConnectorRegistry | None = None

    def get(self, code: str) -> Any:
        return self.registry.get(code) if self.registry else None


@dataclass
class World:
    """Sandboxes, receiver, registry and helpers to drive a payment through a counterpart."""

    sandboxes: RunningSandboxes
    receiver: RunningHttp
    core: RecordingCore
    registry: ConnectorRegistry

    def sandbox(self, code: str) -> Sandbox:
        return sandbox_of(self.sandboxes.apps[code])

    def url(self, code: str) -> str:
        return self.sandboxes.servers[code].url

    def connector(self, code: str) -> Any:
        connector = self.registry.get(code)
        assert connector is not None
        return connector

    def act(self, code: str, reference: str, action: str = "pay") -> dict[str, Any]:
        answer = requests.post(f"{self.url(code)}/sandbox/payments/{reference}/{action}", timeout=5)
        answer.raise_for_status()
        self.sandbox(code).sender.wait_idle(10)
        return dict(answer.json())

    def view(self, code: str, reference: str) -> dict[str, Any]:
        return dict(requests.get(f"{self.url(code)}/sandbox/payments/{reference}", timeout=5).json())

    def start(self, code: str, amount: int) -> tuple[str, Any]:
        """Create a payment at the counterpart as the platform would; returns (reference, ConnectorResult)."""
        reference = new_reference()
        result = self.connector(code).create(order(reference, amount))
        if code == "vnpay":  # VNPay learns of the payment when the payer opens the signed URL
            opened = requests.get(result.redirect_url, allow_redirects=False, timeout=5)
            assert opened.status_code == 302, opened.text
        return reference, result

    def stop(self) -> None:
        self.sandboxes.stop()
        self.receiver.stop()


def order(reference: str, amount: int) -> PaymentOrder:
    return PaymentOrder(payment_id=f"id-{reference}", reference=reference, amount=amount,
                        description=f"{reference} LE PHI", beneficiary_bin="970436",
                        beneficiary_account="0011001234567", expires_at=datetime.now(UTC) + timedelta(hours=1),
                        return_url="http://127.0.0.1:9/pay/return", payer_name="NGUYEN VAN A")


def start_world(timeout_seconds: float = 5.0, **registry_options: Any) -> World:
    core = RecordingCore()
    late = LateRegistry()
    app = Flask("callback-receiver")
    app.register_blueprint(callbacks_blueprint(late, core, core.pull))
    receiver = start_http(app, name="callback-receiver")
    sandboxes = start_all(ports=dict.fromkeys(catalog.SANDBOX_PORTS, 0), notify_url_base=f"{receiver.url}/callbacks",
                          settings=FAST_SETTINGS)
    ports = {code: server.port for code, server in sandboxes.servers.items()}
    late.registry = ConnectorRegistry.from_config(default_sandbox_config(ports=ports, timeout_seconds=timeout_seconds),
                                                  callback_base_url=f"{receiver.url}/callbacks", **registry_options)
    return World(sandboxes, receiver, core, late.registry)


def wait_until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    return check()
