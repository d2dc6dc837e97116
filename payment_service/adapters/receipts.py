"""Receipt signing (Ed25519) and issuing into the payer's wallet: a gRPC adapter, an in-memory fake, token sources."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from payment_service.domain.receipt import XML_NAMESPACE
from payment_service.service_layer.ports import SignedReceipt
from servicekit.grpc_client import service_channel
from servicekit.settings import StartupError

CHUNK_SIZE = 256 * 1024
WALLET_TIMEOUT_SECONDS = 10.0


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class Ed25519Signer:
    """Signs with the platform's receipt key (PEM PKCS#8); ``generate`` makes a throwaway key for dev and tests."""

    algorithm = "EdDSA"

    def __init__(self, private_key: Ed25519PrivateKey, key_id: str) -> None:
        self._key = private_key
        self.key_id = key_id

    @classmethod
    def generate(cls, key_id: str = "dev-receipts") -> Ed25519Signer:
        return cls(Ed25519PrivateKey.generate(), key_id)

    @classmethod
    def development(cls, agency_code: str) -> Ed25519Signer:
        """The sandbox issuing key of ``agency_code`` that the wallet registers in development (derived from the
        agency code, key id ``dev-<code>-1``): public knowledge, so production refuses to start without a key
        file."""
        seed = hashlib.sha256(f"dvc-dev-issuer-key:{agency_code}".encode()).digest()
        return cls(Ed25519PrivateKey.from_private_bytes(seed), f"dev-{agency_code.lower()}-1")

    @classmethod
    def from_pem_file(cls, path: str, key_id: str, setting: str) -> Ed25519Signer:
        try:
            key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise StartupError(setting, f"cannot read the receipt signing key {path}: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise StartupError(setting, "the receipt signing key must be an Ed25519 private key (PEM PKCS#8)")
        return cls(key, key_id)

    def sign(self, content: bytes) -> bytes:
        return self._key.sign(content)

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def public_key_pem(self) -> str:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


class FakeReceiptIssuer:
    """Keeps issued receipts in memory, once per receipt number; ``fail_next`` makes the next calls fail."""

    def __init__(self) -> None:
        self.issued: dict[str, SignedReceipt] = {}
        self.calls = 0
        self.fail_next = 0
        self._lock = threading.Lock()

    def issue(self, receipt: SignedReceipt) -> str:
        with self._lock:
            self.calls += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                raise ConnectionError("wallet unavailable (fake)")
            self.issued.setdefault(receipt.number, receipt)
        return f"doc-{receipt.number}"


class StaticTokenSource:
    """A fixed bearer token, or one minted per call by a function (tests: LocalTokenIssuer)."""

    def __init__(self, token: str | Callable[[], str]) -> None:
        self._token = token

    def token(self) -> str:
        return self._token() if callable(self._token) else self._token


class ClientCredentialsTokenSource:
    """Client-credentials tokens from identity's IssueClientToken, cached until shortly before they expire."""

    def __init__(self, target: str, client_id: str, client_secret: str, audience: str = "dvc-wallet",
                 scope: str = "wallet.issue") -> None:
        self._channel = service_channel(target)
        self._client_id = client_id
        self._client_secret = client_secret
        self._audience = audience
        self._scope = scope
        self._token = ""
        self._expires = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        from dvc.identity.v1 import identity_pb2, identity_pb2_grpc

        with self._lock:
            if self._token and time.monotonic() < self._expires - 30:
                return self._token
            stub = identity_pb2_grpc.IdentityServiceStub(self._channel)
            response = stub.IssueClientToken(identity_pb2.IssueClientTokenRequest(
                client_id=self._client_id, client_secret=self._client_secret, audience=self._audience,
                scope=self._scope), timeout=WALLET_TIMEOUT_SECONDS)
            self._token = response.tokens.access_token
            self._expires = time.monotonic() + max(response.tokens.expires_in, 60)
            return self._token

    def close(self) -> None:
        self._channel.close()


def signed_facts(receipt: SignedReceipt) -> dict[str, Any]:
    """The receipt fields exactly as signed (the SignedContent of the XML document)."""
    # Our own document, built by receipt_xml: no entities or DTDs to defuse.
    encoded = ElementTree.fromstring(receipt.content).find(f"{{{XML_NAMESPACE}}}SignedContent")  # noqa: S314
    if encoded is None or not encoded.text:
        raise ValueError("the receipt has no SignedContent")
    facts: dict[str, Any] = json.loads(base64.b64decode(encoded.text))
    return facts


def receipt_metadata(receipt: SignedReceipt) -> dict[str, str]:
    """The wallet's FEE_RECEIPT metadata fields, taken from the signed receipt itself."""
    facts = signed_facts(receipt)
    return {
        "receipt_number": receipt.number, "payment_reference": facts["payment"]["reference"],
        "amount_vnd": str(facts["amount"]), "paid_at": facts["paid_at"],
        "dossier_code": facts["payment"]["dossier_code"], "procedure_code": facts["payment"]["procedure_code"],
        "payer_name": facts["payer"]["name"], "collecting_agency": facts["agency"]["code"],
    }


class WalletReceiptIssuer:
    """Issues the receipt through the wallet's IssueDocument (client stream: metadata, then content chunks),
    signing the wallet's manifest with the same receipt key; the receipt number is the idempotency key."""

    def __init__(self, target: str, tokens: StaticTokenSource | ClientCredentialsTokenSource, signer: Ed25519Signer,
                 *, issuer_agency: str, document_type: str) -> None:
        self._channel = service_channel(target)
        self._tokens = tokens
        self._signer = signer
        self._issuer_agency = issuer_agency
        self._document_type = document_type

    def manifest(self, receipt: SignedReceipt, metadata: dict[str, str]) -> bytes:
        """The wallet's manifest (its IssueDocumentMetadata contract): sorted keys, no whitespace, UTF-8."""
        return json.dumps({
            "citizen_id": receipt.payer_national_id, "content_sha256": hashlib.sha256(receipt.content).hexdigest(),
            "document_type": self._document_type, "issuer_agency": self._issuer_agency, "metadata": metadata,
            "supersedes": "", "v": 1, "valid_from": "", "valid_until": "",
        }, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def issue(self, receipt: SignedReceipt) -> str:
        from dvc.wallet.v1 import wallet_pb2, wallet_pb2_grpc

        metadata = receipt_metadata(receipt)
        signature = self._signer.sign(self.manifest(receipt, metadata))

        def parts() -> Iterator[wallet_pb2.IssueDocumentRequest]:
            yield wallet_pb2.IssueDocumentRequest(metadata=wallet_pb2.IssueDocumentMetadata(
                citizen_id=receipt.payer_national_id, type_code=self._document_type, metadata=metadata,
                issuer_key_id=self._signer.key_id, signature=signature, idempotency_key=receipt.number,
                content_sha256=hashlib.sha256(receipt.content).hexdigest()))
            for start in range(0, len(receipt.content), CHUNK_SIZE):
                yield wallet_pb2.IssueDocumentRequest(chunk=receipt.content[start:start + CHUNK_SIZE])

        stub = wallet_pb2_grpc.WalletServiceStub(self._channel)
        response = stub.IssueDocument(parts(), timeout=WALLET_TIMEOUT_SECONDS,
                                      metadata=(("authorization", f"Bearer {self._tokens.token()}"),))
        return str(response.document.document_id)

    def close(self) -> None:
        self._channel.close()
