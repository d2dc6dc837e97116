"""Outbound HTTP for agency callbacks: a pooled requests session with a hard timeout on every call."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter

MAX_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 3.0


class RequestsCallbackSender:
    """POSTs with connect and read timeouts (never more than 10 s), no redirects, pooled connections."""

    def __init__(self, pool_size: int = 16) -> None:
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_seconds: float) -> int:
        read_timeout = min(timeout_seconds, MAX_TIMEOUT_SECONDS)
        response = self._session.post(url, data=body, headers=headers, allow_redirects=False,
                                      timeout=(min(CONNECT_TIMEOUT_SECONDS, read_timeout), read_timeout))
        response.close()
        return response.status_code

    def close(self) -> None:
        self._session.close()
