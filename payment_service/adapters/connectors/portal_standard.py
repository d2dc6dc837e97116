"""The portal connection standard (DVC-PORTAL-1) for banks: Ed25519-signed JSON over HTTPS with key id, timestamp and
nonce headers; create, status, refund, idempotent notifications and a signed daily settlement CSV. Vietcombank,
VietinBank, BIDV, Agribank, MB and VNPT Pay are configured instances; docs/bank-connection-standard.md is the spec."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from payment_service.adapters.connectors.base import (
    Clock,
    ConfigEntry,
    ConnectorBase,
    CredentialError,
    HttpResponse,
    Scrubber,
    SettlementLayout,
    bad_signature,
    protocol_error,
    to_dong,
    utc_now,
)
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackReply,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorInfo,
    ConnectorResult,
    ConnectorStatus,
    InboundNotification,
    NotificationKind,
    PaymentOrder,
    RefundResult,
    SettlementLine,
)

SCHEME = "DVC-PORTAL-1"
HEADER_KEY_ID = "X-DVC-Key-Id"
HEADER_TIMESTAMP = "X-DVC-Timestamp"
HEADER_NONCE = "X-DVC-Nonce"
HEADER_SIGNATURE = "X-DVC-Signature"
SIGNATURE_LINE_PREFIX = "#DVC-SIGNATURE "
DEFAULT_REPLAY_WINDOW = 300
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
MAX_NOTIFICATION_BYTES = 64 * 1024

PAYMENTS_PATH = "/v1/payments"
REFUNDS_PATH = "/v1/refunds"
SETTLEMENTS_PATH = "/v1/settlements"

STATUSES: Mapping[str, ConnectorStatus] = {
    "PENDING": ConnectorStatus.PENDING, "SUCCEEDED": ConnectorStatus.SUCCEEDED,
    "FAILED": ConnectorStatus.FAILED, "CANCELLED": ConnectorStatus.CANCELLED,
}
SETTLEMENT_LAYOUT = SettlementLayout(
    reference="reference", provider_reference="bank_transaction_id", amount="amount", status="status",
    settled_on="settled_on", statuses=STATUSES,
)
# The bank's error codes that mean our side is misconfigured (wrong key, clock off), not a refused payment.
_CONFIGURATION_CODES = frozenset({"BAD_SIGNATURE", "UNKNOWN_KEY", "STALE_TIMESTAMP"})

# Our answer to a bank notification: 2xx stops the bank's retries, 4xx stops them and alerts its operators,
# 5xx asks for a retry.
REPLIES: Mapping[CallbackOutcome, tuple[int, str]] = {
    CallbackOutcome.ACCEPTED: (200, "OK"),
    CallbackOutcome.DUPLICATE: (200, "DUPLICATE"),
    CallbackOutcome.UNKNOWN_REFERENCE: (404, "UNKNOWN_REFERENCE"),
    CallbackOutcome.AMOUNT_MISMATCH: (422, "AMOUNT_MISMATCH"),
    CallbackOutcome.BAD_SIGNATURE: (401, "BAD_SIGNATURE"),
    CallbackOutcome.REJECTED: (400, "REJECTED"),
    CallbackOutcome.ERROR: (503, "RETRY_LATER"),
}


# --- signing -------------------------------------------------------------------------------------------------

def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def request_base_string(method: str, target: str, timestamp: str, nonce: str, key_id: str, body: bytes) -> bytes:
    """What a request or notification signs: scheme, method, path with query, timestamp, nonce, key id and the
    SHA-256 of the body, one per line."""
    return "\n".join((SCHEME, method.upper(), target, timestamp, nonce, key_id, body_digest(body))).encode("utf-8")


def response_base_string(status: int, request_nonce: str, timestamp: str, nonce: str, key_id: str,
                         body: bytes) -> bytes:
    """What a response signs: like a request, with ``RESPONSE <status>`` and the nonce of the request it answers
    (binding the answer to that request, so an old answer cannot be replayed)."""
    return "\n".join((SCHEME, f"RESPONSE {status}", request_nonce, timestamp, nonce, key_id,
                      body_digest(body))).encode("utf-8")


def file_base_string(key_id: str, content: bytes) -> bytes:
    return "\n".join((SCHEME, "FILE", key_id, body_digest(content))).encode("utf-8")


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def private_key_from_pem(pem: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.replace("\\n", "\n").encode("ascii"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def public_key_from_pem(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.replace("\\n", "\n").encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


class NonceStore(Protocol):
    """Remembers nonces until they expire; ``remember`` is False when the nonce was already used."""

    def remember(self, key_id: str, nonce: str, expires_at: float) -> bool: ...


class MemoryNonceStore:
    """Nonces of one process, dropped once outside the replay window. Bounded: when full of live nonces it
    refuses new ones (fail closed) rather than forgetting live ones. With several replicas a replayed notice
    could reach another replica, where the core's notification-id deduplication still makes it harmless."""

    def __init__(self, capacity: int = 200_000, clock: Clock = utc_now) -> None:
        self.capacity = capacity
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, key_id: str, nonce: str, expires_at: float) -> bool:
        now = self.clock().timestamp()
        with self._lock:
            while self._seen:
                oldest_key, oldest_expiry = next(iter(self._seen.items()))
                if oldest_expiry > now:
                    break
                del self._seen[oldest_key]
            key = (key_id, nonce)
            if key in self._seen or len(self._seen) >= self.capacity:
                return False
            self._seen[key] = expires_at
            # Entries are kept in expiry order for the pruning above; windows are equal, so appending keeps it.
            return True


@dataclass
class PortalSigner:
    """Signs as one party (the platform toward a bank, or a bank in the sandbox)."""

    key_id: str
    private_key: Ed25519PrivateKey

    def sign(self, base: bytes) -> str:
        return base64.b64encode(self.private_key.sign(base)).decode("ascii")

    def request_headers(self, method: str, target: str, body: bytes, *, now: float,
                        nonce: str | None = None) -> dict[str, str]:
        timestamp, nonce = str(int(now)), nonce or new_nonce()
        return {HEADER_KEY_ID: self.key_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
                HEADER_SIGNATURE: self.sign(request_base_string(method, target, timestamp, nonce, self.key_id, body))}

    def response_headers(self, status: int, request_nonce: str, body: bytes, *, now: float) -> dict[str, str]:
        timestamp, nonce = str(int(now)), new_nonce()
        return {HEADER_KEY_ID: self.key_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
                HEADER_SIGNATURE: self.sign(response_base_string(status, request_nonce, timestamp, nonce,
                                                                 self.key_id, body))}

    def sign_file(self, content: bytes) -> bytes:
        """Append the signature line that makes a settlement file verifiable wherever it travels."""
        if not content.endswith(b"\n"):
            content += b"\n"
        signature = self.sign(file_base_string(self.key_id, content))
        return content + f"{SIGNATURE_LINE_PREFIX}key-id={self.key_id} signature={signature}\n".encode("ascii")


def _refused(code: str, message: str) -> ConnectorError:
    """A verification failure, with the standard's error code as provider_code."""
    return ConnectorError(ConnectorErrorKind.BAD_SIGNATURE, message, provider_code=code)


@dataclass
class SignedHeaders:
    key_id: str
    timestamp: str
    nonce: str
    signature: bytes


@dataclass
class PortalVerifier:
    """Checks what the other party signed: signature first, then the time window, then the nonce."""

    key_id: str
    public_key: Ed25519PublicKey
    nonces: NonceStore
    window_seconds: int = DEFAULT_REPLAY_WINDOW

    def _headers(self, headers: Mapping[str, str]) -> SignedHeaders:
        lowered = {name.lower(): value for name, value in headers.items()}
        key_id = lowered.get(HEADER_KEY_ID.lower(), "")
        timestamp = lowered.get(HEADER_TIMESTAMP.lower(), "")
        nonce = lowered.get(HEADER_NONCE.lower(), "")
        encoded = lowered.get(HEADER_SIGNATURE.lower(), "")
        if not (_KEY_ID.fullmatch(key_id) and _TIMESTAMP.fullmatch(timestamp) and _NONCE.fullmatch(nonce)):
            raise _refused("BAD_SIGNATURE", "signature headers are missing or malformed")
        if key_id != self.key_id:
            raise _refused("UNKNOWN_KEY", f"unknown key id {key_id!r}")
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise _refused("BAD_SIGNATURE", "signature is not base64") from None
        return SignedHeaders(key_id, timestamp, nonce, signature)

    def _check(self, base: bytes, signed: SignedHeaders, now: float) -> None:
        try:
            self.public_key.verify(signed.signature, base)
        except InvalidSignature:
            raise _refused("BAD_SIGNATURE", "signature does not verify") from None
        if abs(now - int(signed.timestamp)) > self.window_seconds:
            raise _refused("STALE_TIMESTAMP", f"timestamp outside the ±{self.window_seconds}s window")

    def verify_request(self, method: str, target: str, headers: Mapping[str, str], body: bytes, *,
                       now: float) -> SignedHeaders:
        signed = self._headers(headers)
        self._check(request_base_string(method, target, signed.timestamp, signed.nonce, signed.key_id, body),
                    signed, now)
        # Only validly signed nonces are stored, so forged messages cannot use up or poison the store.
        if not self.nonces.remember(signed.key_id, signed.nonce, now + 2 * self.window_seconds):
            raise _refused("REPLAYED_NONCE", "nonce already used (replay)")
        return signed

    def verify_response(self, status: int, request_nonce: str, headers: Mapping[str, str], body: bytes, *,
                        now: float) -> None:
        signed = self._headers(headers)
        self._check(response_base_string(status, request_nonce, signed.timestamp, signed.nonce, signed.key_id,
                                         body), signed, now)

    def verify_file(self, content: bytes) -> bytes:
        """The file without its signature line, once the line verifies."""
        body, _, last = content.rstrip(b"\n").rpartition(b"\n")
        match = re.fullmatch(rf"{SIGNATURE_LINE_PREFIX}key-id=(\S+) signature=(\S+)",
                             last.decode("ascii", "replace"))
        if match is None:
            raise bad_signature("settlement file has no signature line")
        if match.group(1) != self.key_id:
            raise bad_signature(f"settlement file signed with unknown key {match.group(1)!r}")
        body += b"\n"
        try:
            self.public_key.verify(base64.b64decode(match.group(2), validate=True),
                                   file_base_string(match.group(1), body))
        except (InvalidSignature, binascii.Error, ValueError):
            raise bad_signature("settlement file signature does not verify") from None
        return body


# --- the connector ---------------------------------------------------------------------------------------------

class PortalClient:
    """The signed JSON conversation with one bank: keys from configuration, signed requests, verified answers and
    notifications. Shared by the bank connector and the VietQR collecting-bank connector."""

    def __init__(self, connector: ConnectorBase, config: ConfigEntry, nonces: NonceStore | None) -> None:
        self.connector = connector
        self.base_url = config.url("base_url")
        self.notify_url = config.url("notify_url")
        self.merchant_id = config.text("merchant_id")
        self.window = int(config.number("replay_window_seconds", DEFAULT_REPLAY_WINDOW, low=0, high=900))
        platform_key_id = config.text("platform_key_id")
        bank_key_id = config.text("bank_key_id")
        self.signer: PortalSigner | None = None
        self.verifier: PortalVerifier | None = None
        private_pem = config.text("platform_private_key")
        public_pem = config.text("bank_public_key")
        for name, value in (("platform_key_id", platform_key_id), ("bank_key_id", bank_key_id)):
            if value and not _KEY_ID.fullmatch(value):
                config.problems.append(CredentialError(name, "use 1-64 letters, digits, '.', '_', ':' or '-'"))
        try:
            if private_pem:
                self.signer = PortalSigner(platform_key_id, private_key_from_pem(private_pem))
        except ValueError:
            config.problems.append(CredentialError("platform_private_key", "is not a PEM-encoded Ed25519 private key"))
        try:
            if public_pem:
                self.verifier = PortalVerifier(bank_key_id, public_key_from_pem(public_pem),
                                               nonces or MemoryNonceStore(clock=connector.clock), self.window)
        except ValueError:
            config.problems.append(CredentialError("bank_public_key", "is not a PEM-encoded Ed25519 public key"))
        # The key's base64 body, line by line, so a PEM pasted into any message is masked.
        self.secrets = [line for line in private_pem.replace("\\n", "\n").splitlines()
                        if line.strip() and not line.startswith("-----")]

    def _now(self) -> float:
        return self.connector.clock().timestamp()

    def _ready(self) -> tuple[PortalSigner, PortalVerifier]:
        if self.signer is None or self.verifier is None:
            raise ConnectorError(ConnectorErrorKind.CONFIGURATION, f"{self.connector.info.code} has no usable keys")
        return self.signer, self.verifier

    def call(self, operation: str, method: str, path: str, payload: Mapping[str, Any] | None = None,
             ) -> HttpResponse:
        """Send a signed request; the answer's signature (bound to our nonce) is verified before it is read."""
        signer, verifier = self._ready()
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() if payload is not None else b""
        target = urlsplit(self.base_url).path + path
        headers = signer.request_headers(method, target, body, now=self._now())
        if payload is not None:
            headers["Content-Type"] = "application/json"
        response = self.connector.http.send(method, f"{self.base_url}{path}", operation=operation, headers=headers,
                                            body=body or None)
        verifier.verify_response(response.status, headers[HEADER_NONCE], response.headers, response.body,
                                 now=self._now())
        return response

    def call_json(self, operation: str, method: str, path: str,
                  payload: Mapping[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        response = self.call(operation, method, path, payload)
        answer = response.json()
        if not isinstance(answer, dict):
            raise protocol_error(f"{operation}: answer is not a JSON object")
        return response.status, answer

    @staticmethod
    def error(operation: str, status: int, answer: Mapping[str, Any]) -> ConnectorError:
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        code = str(error.get("code", status)) if isinstance(error, dict) else str(status)
        kind = ConnectorErrorKind.CONFIGURATION if code in _CONFIGURATION_CODES else ConnectorErrorKind.REJECTED
        return ConnectorError(kind, f"{operation}: bank answered {status} {code}", provider_code=code)

    def verified_notification(self, request: CallbackRequest) -> dict[str, Any]:
        """Verify a bank notification (signature, window, nonce) and return its JSON object."""
        _, verifier = self._ready()
        if len(request.body) > MAX_NOTIFICATION_BYTES:
            raise bad_signature("notification too large")
        verifier.verify_request(request.method, urlsplit(self.notify_url).path, request.headers, request.body,
                                now=self._now())
        try:
            notice = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise protocol_error("notification is not JSON") from None
        if not isinstance(notice, dict) or not notice.get("notification_id"):
            raise protocol_error("notification has no notification_id")
        return notice

    def fetch_signed_file(self, path: str) -> bytes:
        response = self.call("settlement", "GET", path)
        if response.status != 200:
            raise self.error("settlement", response.status, _json_or_empty(response))
        _, verifier = self._ready()
        return verifier.verify_file(response.body)

    def verify_file(self, content: bytes) -> bytes:
        _, verifier = self._ready()
        return verifier.verify_file(content)


def _json_or_empty(response: HttpResponse) -> dict[str, Any]:
    try:
        answer = response.json()
    except ConnectorError:
        return {}
    return answer if isinstance(answer, dict) else {}


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def portal_reply(outcome: CallbackOutcome) -> CallbackReply:
    status, code = REPLIES[outcome]
    return CallbackReply(status, json.dumps({"code": code}).encode())


def portal_scrubber(secrets_: list[str]) -> Scrubber:
    return Scrubber(secrets=secrets_, signature_fields=(HEADER_SIGNATURE, "signature"),
                    account_fields=("account", "number", "account_number"))


class PortalStandardConnector(ConnectorBase):
    """One bank (or VNPT Pay) speaking the portal connection standard; which bank is only configuration."""

    settlement_layout = SETTLEMENT_LAYOUT

    def __init__(self, code: str, config: ConfigEntry, *, clock: Clock = utc_now,
                 session: requests.Session | None = None, nonces: NonceStore | None = None) -> None:
        channel = config.text("channel", "bank")
        info = ConnectorInfo(code=code, display_name=config.text("display_name", code), channel=channel,
                             extra={"standard": SCHEME, "bank_bin": config.text("bank_bin", "")})
        super().__init__(info, config, portal_scrubber([]), clock=clock, session=session)
        self.portal = PortalClient(self, config, nonces)
        self.scrubber.add_secrets(*self.portal.secrets)

    def create(self, order: PaymentOrder) -> ConnectorResult:
        status, answer = self.portal.call_json("create", "POST", PAYMENTS_PATH, {
            "merchant_id": self.portal.merchant_id, "reference": order.reference, "amount": order.amount,
            "currency": "VND", "description": order.description,
            "beneficiary": {"bin": order.beneficiary_bin, "account": order.beneficiary_account},
            "expires_at": order.expires_at.isoformat(), "return_url": order.return_url,
            "notify_url": self.portal.notify_url,
        })
        if status not in (200, 201):
            raise self.portal.error("create", status, answer)
        result = STATUSES.get(str(answer.get("status")))
        if answer.get("reference") != order.reference or result is None:
            raise protocol_error("create: answer is about another payment or has an unknown status")
        # A repeated create (same reference) answers the payment's current status, which may be past PENDING.
        return ConnectorResult(result, provider_reference=str(answer.get("bank_transaction_id", "")),
                               redirect_url=str(answer.get("payment_url", "")))

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        status, answer = self.portal.call_json("status", "GET", f"{PAYMENTS_PATH}/{quote(reference, safe='')}")
        if status == 404:
            return ConnectorResult(ConnectorStatus.UNKNOWN, provider_code="NOT_FOUND",
                                   message="the bank has no such payment")
        if status != 200:
            raise self.portal.error("status", status, answer)
        if answer.get("reference") != reference:
            raise protocol_error("status: answer is about another payment")
        result = STATUSES.get(str(answer.get("status")))
        if result is None:
            raise protocol_error(f"status: unknown status {str(answer.get('status'))[:20]!r}")
        return ConnectorResult(result, provider_reference=str(answer.get("bank_transaction_id", "")),
                               amount=to_dong(answer.get("amount", ""), what="amount"),
                               provider_code=str(answer["status"]),
                               paid_at=parse_time(answer.get("paid_at")))

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        status, answer = self.portal.call_json("refund", "POST", REFUNDS_PATH, {
            "refund_id": refund_id, "reference": reference, "bank_transaction_id": provider_reference,
            "amount": amount})
        if status == 200:
            return RefundResult(accepted=answer.get("status") == "ACCEPTED",
                                provider_reference=str(answer.get("bank_refund_id", "")),
                                provider_code=str(answer.get("code", answer.get("status", ""))),
                                message=str(answer.get("message", "")))
        error = self.portal.error("refund", status, answer)
        if error.kind is ConnectorErrorKind.REJECTED:
            return RefundResult(accepted=False, provider_code=error.provider_code, message=str(error))
        raise error

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        return self.parse_settlement(self.portal.fetch_signed_file(f"{SETTLEMENTS_PATH}/{day.isoformat()}"),
                                     verified=True)

    def parse_settlement(self, content: bytes, *, verified: bool = False) -> list[SettlementLine]:
        """An uploaded file must still carry the bank's signature line."""
        return super().parse_settlement(content if verified else self.portal.verify_file(content))

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        notice = self.portal.verified_notification(request)
        kind = {"PAYMENT_RESULT": NotificationKind.PAYMENT_RESULT,
                "REFUND_RESULT": NotificationKind.REFUND_RESULT}.get(str(notice.get("type")))
        status = STATUSES.get(str(notice.get("status")))
        if kind is None or status is None or not notice.get("reference"):
            raise protocol_error("notification type, status or reference is missing or unknown")
        provider_reference = notice.get("bank_refund_id") if kind is NotificationKind.REFUND_RESULT else \
            notice.get("bank_transaction_id")
        return InboundNotification(
            kind=kind, reference=str(notice["reference"]), status=status,
            amount=to_dong(notice.get("amount", ""), what="amount"), provider_reference=str(provider_reference or ""),
            notification_id=str(notice["notification_id"]), occurred_at=parse_time(notice.get("occurred_at")),
            raw_code=str(notice.get("status")),
            refund_id=str(notice.get("refund_id") or "") if kind is NotificationKind.REFUND_RESULT else "")

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        return portal_reply(outcome)
