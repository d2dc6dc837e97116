"""Helpers for connector unit tests: a fixed clock, connector configuration, orders, and a requests transport that
answers from the test (canned counterpart messages, timeouts) without any socket."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from payment_service.adapters.connectors.base import ConfigEntry
from payment_service.domain.connector import PaymentOrder

NOW = datetime(2026, 11, 22, 3, 0, tzinfo=UTC)

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class CannedTransport(BaseAdapter):
    """Answers each request with ``handler(request)``: (status, headers, body), or raises what it raises."""

    handler: Callable[[requests.PreparedRequest], Answer] = lambda request: (200, {}, b"")
    requests: list[requests.PreparedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,  # type: ignore[override]
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        self.requests.append(request)
        status, headers, body = self.handler(request)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response.raw = io.BytesIO(body)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        return None

    @property
    def last(self) -> requests.PreparedRequest:
        return self.requests[-1]

    def last_json(self) -> Any:
        body = self.last.body
        return json.loads(body if isinstance(body, (bytes, str)) else b"{}")


def clock() -> datetime:
    return NOW


def entry(code: str, **values: Any) -> ConfigEntry:
    return ConfigEntry(code, {"notify_url": f"https://dvc.test/callbacks/{code}", **values}, environ={})


def order(reference: str = "DVC7K2M9QX4TB1HZ", amount: int = 150_000) -> PaymentOrder:
    return PaymentOrder(payment_id="pay-1", reference=reference, amount=amount, description=f"{reference} LE PHI",
                        beneficiary_bin="970436", beneficiary_account="0011001234567",
                        expires_at=NOW + timedelta(hours=2), return_url="https://dvc.test/pay/return")
