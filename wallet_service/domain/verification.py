"""Re-checking a stored document: its content hash, the issuer's signature over its manifest, and its status."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from wallet_service.domain.manifest import PublicKey, document_manifest, signature_verifies
from wallet_service.domain.model import Document, DocumentStatus, TrustLevel, VerificationStatus


@dataclass(frozen=True)
class Verification:
    """What a check found; ``valid`` only when content, signature and status are all good."""

    verification_status: VerificationStatus
    document_status: DocumentStatus
    trust_level: TrustLevel
    valid: bool
    expected_sha256: str
    actual_sha256: str
    signature_valid: bool
    checked_at: datetime
    detail: str
    content_checked: bool

    @property
    def content_intact(self) -> bool:
        return self.verification_status in (VerificationStatus.VERIFIED, VerificationStatus.SIGNATURE_INVALID,
                                            VerificationStatus.UNSIGNED_INTACT)


SignatureCheck = Callable[[PublicKey, bytes, bytes], bool]


def verify_document(document: Document, *, public_key: PublicKey | None, content: bytes | None,
                    content_checked: bool, now: datetime,
                    check_signature: SignatureCheck = signature_verifies) -> Verification:
    """Check ``content`` (when it was read; None means the object is missing) against the recorded hash,
    and the signature against the manifest rebuilt from what the wallet holds."""
    issued = document.trust_level is TrustLevel.ISSUED
    signature_valid = bool(issued and public_key is not None and document.signature
                           and check_signature(public_key, document_manifest(document), document.signature))
    actual = ""
    status = VerificationStatus.VERIFIED if issued else VerificationStatus.UNSIGNED_INTACT
    detail = ""
    if content_checked:
        if content is None:
            status, detail = VerificationStatus.CONTENT_MISSING, "the content object is missing from storage"
        else:
            actual = hashlib.sha256(content).hexdigest()
            if actual != document.content_sha256:
                status = VerificationStatus.TAMPERED
                detail = "the stored content does not match the SHA-256 recorded at issue: it was altered in storage"
    if status in (VerificationStatus.VERIFIED,) and not signature_valid:
        status = VerificationStatus.SIGNATURE_INVALID
        detail = ("the issuer key is no longer registered" if public_key is None
                  else "the issuer's signature does not verify over the document's manifest")
    if not issued and status is VerificationStatus.UNSIGNED_INTACT:
        detail = "uploaded by the citizen: intact, but no agency vouches for it"
    document_status = document.status_at(now)
    valid = status is VerificationStatus.VERIFIED and document_status is DocumentStatus.VALID
    if status is VerificationStatus.VERIFIED and not valid:
        detail = f"authentic, but the document is {document_status.value.lower().replace('_', ' ')}"
    return Verification(verification_status=status, document_status=document_status,
                        trust_level=document.trust_level, valid=valid, expected_sha256=document.content_sha256,
                        actual_sha256=actual, signature_valid=signature_valid, checked_at=now, detail=detail,
                        content_checked=content_checked)
