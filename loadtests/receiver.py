"""The provincial system's callback receiver: an HTTP endpoint (gevent WSGI server) that checks each callback's
X-DVC-Signature with the agency's secret, answers 2xx only to authentic ones, and records every event id."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from gevent.pywsgi import WSGIServer

from loadtests.ledger import CALLBACK, Ledger
from payment_service import callback_signature

log = logging.getLogger("loadtests.receiver")
PATH = "/callbacks"


class CallbackReceiver:
    """Serves POST /callbacks/<agency code>; ``secrets`` maps agency code to its callback secret(s) and may grow
    after the server started (agencies are registered once the URL is known)."""

    def __init__(self, ledger: Ledger, host: str = "127.0.0.1", port: int = 0) -> None:
        self.ledger = ledger
        self.secrets: dict[str, list[str]] = {}
        self.received = 0
        self.rejected = 0
        self._server = WSGIServer((host, port), self._app, log=None, error_log=log)

    def start(self) -> None:
        self._server.start()

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def stop(self) -> None:
        self._server.stop(timeout=2)

    def _app(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(PATH + "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        agency = path[len(PATH) + 1:]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        header = str(environ.get("HTTP_X_DVC_SIGNATURE", ""))
        event_header = str(environ.get("HTTP_X_DVC_EVENT_ID", ""))
        try:
            callback_signature.verify(body, header, self.secrets.get(agency, []))
            payload = json.loads(body)
        except (callback_signature.SignatureError, ValueError) as error:
            self.rejected += 1
            self.ledger.add(CALLBACK, agency=agency, event_id=event_header, signature_ok=False, error=str(error))
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"bad signature"]
        payment = payload.get("payment", {})
        self.received += 1
        self.ledger.add(CALLBACK, agency=agency, event_id=payload.get("event_id", ""), header_event_id=event_header,
                        payment_id=payment.get("id", ""), type=payload.get("type", ""),
                        status=payment.get("status", ""), sequence=payload.get("sequence", 0), signature_ok=True)
        start_response("204 No Content", [])
        return [b""]
