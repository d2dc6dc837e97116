"""A provincial dossier system's callback endpoint: checks each status callback's signature and keeps the latest."""

from __future__ import annotations

import argparse
import collections
import json
import threading
from typing import Any

from flask import Flask, Response, jsonify, request

from payment_service import callback_signature

KEEP = 200


def create_app(secrets: list[str]) -> Flask:
    """Answer 204 to authentic callbacks and 401 with the reason to any other; GET lists what arrived."""
    app = Flask("provincial-system-sandbox")
    received: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEEP)
    lock = threading.Lock()

    @app.post("/dvc-callbacks")
    def callback() -> Response | tuple[Response, int]:
        body = request.get_data()
        try:
            callback_signature.verify(body, request.headers.get(callback_signature.HEADER, ""), secrets)
        except callback_signature.SignatureError as error:
            return jsonify({"error": str(error)}), 401
        with lock:
            received.appendleft({"event_id": request.headers.get(callback_signature.EVENT_ID_HEADER, ""),
                                 "body": json.loads(body)})
        return Response(status=204)

    @app.get("/dvc-callbacks")
    def listing() -> Response:
        with lock:
            return jsonify({"callbacks": list(received)})

    return app


def main() -> None:
    from payment_service.bootstrap import PaymentSettings
    from servicekit.http_edge import start_http

    parser = argparse.ArgumentParser(prog="python -m payment_service.sandbox.provincial_system", description=__doc__)
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--secret", default=PaymentSettings().demo_callback_secret,
                        help="the callback secret of the demo agencies (PAYMENT_DEMO_CALLBACK_SECRET)")
    args = parser.parse_args()
    running = start_http(create_app([args.secret]), port=args.port, port_setting="--port", name="provincial-system")
    print(f"provincial system sandbox: callbacks at {running.url}/dvc-callbacks", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
