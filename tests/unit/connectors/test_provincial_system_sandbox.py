"""The provincial system sandbox accepts only callbacks signed with its secret, and lists what it accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from payment_service.sandbox.provincial_system import create_app

SECRET = "agency-secret"


def signed_headers(body: bytes, secret: str) -> dict[str, str]:
    timestamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-DVC-Signature": f"t={timestamp},v1={mac}", "X-DVC-Event-Id": "evt-1"}


def test_an_authentic_callback_is_accepted_and_listed():
    client = create_app([SECRET]).test_client()
    body = json.dumps({"type": "payment.succeeded", "payment": {"reference": "DVCABC"}}).encode()
    answer = client.post("/dvc-callbacks", data=body, headers=signed_headers(body, SECRET))
    assert answer.status_code == 204
    listed = client.get("/dvc-callbacks").get_json()["callbacks"]
    assert listed == [{"event_id": "evt-1", "body": {"type": "payment.succeeded", "payment": {"reference": "DVCABC"}}}]


def test_a_callback_signed_with_another_secret_is_refused_and_not_listed():
    client = create_app([SECRET]).test_client()
    body = b'{"type": "payment.succeeded"}'
    answer = client.post("/dvc-callbacks", data=body, headers=signed_headers(body, "someone-else"))
    assert answer.status_code == 401
    assert client.get("/dvc-callbacks").get_json()["callbacks"] == []
