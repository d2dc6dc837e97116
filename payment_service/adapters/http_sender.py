"""Outbound HTTP for agency callbacks: a pooled requests session with a hard timeout on every call."""

from __future__ import annotations

import time

import requests
from requests.adapters import HTTPAdapter

from payment_service.adapters.http_deadline import AnswerTooLarge, read_body

MAX_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 3.0
MAX_ANSWER_BYTES = 64 * 1024  # an acknowledgement; the body is read only to finish the exchange in time


class RequestsCallbackSender:
    """POSTs that finish within their timeout (never more than 10 s) however slowly the agency answers, no
    redirects, pooled connections."""

    def __init__(self, pool_size: int = 16) -> None:
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout_seconds: float) -> int:
        budget = min(timeout_seconds, MAX_TIMEOUT_SECONDS)
        deadline = time.monotonic() + budget
        with self._session.post(url, data=body, headers=headers, allow_redirects=False, stream=True,
                                timeout=(min(CONNECT_TIMEOUT_SECONDS, budget), budget)) as response:
            try:
                read_body(response, deadline, MAX_ANSWER_BYTES)
            except AnswerTooLarge:
                pass  # the status line is the answer; a large body is only not worth reading
            return response.status_code

    def close(self) -> None:
        self._session.close()
