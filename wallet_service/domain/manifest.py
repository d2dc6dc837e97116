"""The signed manifest of an issued document: canonical JSON of its content hash and metadata, and its signature."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from servicekit.errors import InvalidArgument
from wallet_service.domain.model import Document, SignatureAlgorithm

MANIFEST_VERSION = 1
_P256_BYTES = 32


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 as itself: every party serialises the same value to the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def manifest_time(moment: datetime | None) -> str:
    """UTC, whole seconds, ``Z`` suffix; empty when unset."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_bytes(*, citizen_id: str, content_sha256: str, document_type: str, issuer_agency: str,
                   metadata: Mapping[str, str], valid_from: datetime | None, valid_until: datetime | None,
                   supersedes: str = "") -> bytes:
    """The exact bytes an issuer signs (documented on IssueDocumentMetadata in wallet.proto)."""
    return canonical_json({
        "citizen_id": citizen_id, "content_sha256": content_sha256, "document_type": document_type,
        "issuer_agency": issuer_agency, "metadata": dict(metadata), "supersedes": supersedes,
        "v": MANIFEST_VERSION, "valid_from": manifest_time(valid_from), "valid_until": manifest_time(valid_until),
    })


def document_manifest(document: Document) -> bytes:
    """The manifest of a stored document, rebuilt from what the wallet holds."""
    return manifest_bytes(citizen_id=document.citizen_id, content_sha256=document.content_sha256,
                          document_type=document.type_code, issuer_agency=document.issuer_agency,
                          metadata=document.metadata, valid_from=document.valid_from,
                          valid_until=document.valid_until, supersedes=document.supersedes_document_id)


PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def load_public_key(pem: str, algorithm: SignatureAlgorithm, field_path: str = "public_key_pem") -> PublicKey:
    """Parse a PEM public key and check it suits the algorithm (P-256 for ES256)."""
    try:
        key = serialization.load_pem_public_key(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError, TypeError):
        raise InvalidArgument.single(field_path, "is not a PEM SubjectPublicKeyInfo public key",
                                     reason="BAD_PUBLIC_KEY") from None
    if algorithm is SignatureAlgorithm.ES256:
        if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
            return key
        raise InvalidArgument.single(field_path, "ES256 needs a P-256 (secp256r1) EC key", reason="BAD_PUBLIC_KEY")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise InvalidArgument.single(field_path, "Ed25519 needs an Ed25519 key", reason="BAD_PUBLIC_KEY")


def public_pem(private_key: PrivateKey) -> str:
    return private_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def sign(private_key: PrivateKey, payload: bytes) -> bytes:
    """Sign a manifest as an issuer does: Ed25519 over the bytes, ES256 as 64-byte r||s over SHA-256."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(payload)
    r, s = decode_dss_signature(private_key.sign(payload, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(_P256_BYTES, "big") + s.to_bytes(_P256_BYTES, "big")


def signature_verifies(public_key: PublicKey, payload: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the key's signature over ``payload`` (ES256 accepted as r||s or DER)."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, payload)
            return True
        if len(signature) == 2 * _P256_BYTES:
            signature = encode_dss_signature(int.from_bytes(signature[:_P256_BYTES], "big"),
                                             int.from_bytes(signature[_P256_BYTES:], "big"))
        public_key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MAX_SIGNATURE_BYTES = 72   # the longest ES256 signature (DER); raw r || s and Ed25519 take 64


class SignatureChecks:
    """Signature checks that passed, so re-reading an unchanged document skips the public-key operation. Keyed by
    a SHA-256 of the key id (a registered key never changes), the exact manifest bytes and the signature: any
    change to what the wallet holds changes the key and is checked afresh. Failures are not remembered, and
    entries are 32 bytes whatever the caller sent, so no caller can fill the memory with them."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._capacity = capacity
        self._passed: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._passed)

    def verifies(self, key_id: str, public_key: PublicKey, payload: bytes, signature: bytes) -> bool:
        if len(signature) > MAX_SIGNATURE_BYTES:
            return False
        memo = hashlib.sha256(b"\0".join([key_id.encode(), hashlib.sha256(payload).digest(), signature])).digest()
        if memo in self._passed:
            return True
        if not signature_verifies(public_key, payload, signature):
            return False
        if len(self._passed) >= self._capacity:
            # Dropping everything is cheaper than tracking recency, and only costs re-checks.
            self._passed.clear()
        self._passed.add(memo)
        return True
