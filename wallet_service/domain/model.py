"""The wallet's entities: document types, issuer keys, documents, shares, requests and access-log entries."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# The wallet's patterns are applied with fullmatch, never as "^...$": "$" also matches before a final newline,
# which let "001099012345\n" past the check and into a varchar(12) column.
NATIONAL_ID = re.compile(r"[0-9]{12}")  # \d would also take other scripts' digits
MAX_SHARE_DAYS = 30
DEFAULT_SHARE_DAYS = 7
MAX_PRESIGNED_URL_SECONDS = 300


class TrustLevel(enum.StrEnum):
    """How much the wallet vouches for a document."""

    ISSUED = "ISSUED"
    SELF_UPLOADED = "SELF_UPLOADED"


class StoredStatus(enum.StrEnum):
    """What the issuer decided; expiry is computed from the dates, never stored."""

    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"
    SUPERSEDED = "SUPERSEDED"


class DocumentStatus(enum.StrEnum):
    """The status a caller sees at a given moment."""

    VALID = "VALID"
    NOT_YET_VALID = "NOT_YET_VALID"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    SUPERSEDED = "SUPERSEDED"


class VerificationStatus(enum.StrEnum):
    """Outcome of re-checking content and signature."""

    VERIFIED = "VERIFIED"
    TAMPERED = "TAMPERED"
    SIGNATURE_INVALID = "SIGNATURE_INVALID"
    CONTENT_MISSING = "CONTENT_MISSING"
    UNSIGNED_INTACT = "UNSIGNED_INTACT"


class ShareStatus(enum.StrEnum):
    """A share's standing at a given moment."""

    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    USED_UP = "USED_UP"


class RequestStatus(enum.StrEnum):
    """Where an agency's request for documents stands."""

    PENDING = "PENDING"
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"


class AccessAction(enum.StrEnum):
    """What an access-log entry records (past tense: it happened)."""

    ISSUED = "ISSUED"
    UPLOADED = "UPLOADED"
    READ = "READ"
    DOWNLOADED = "DOWNLOADED"
    VERIFIED = "VERIFIED"
    SHARED = "SHARED"
    SHARE_REVOKED = "SHARE_REVOKED"
    REDEEMED = "REDEEMED"
    DOCUMENT_REVOKED = "DOCUMENT_REVOKED"
    SUPERSEDED = "SUPERSEDED"
    DELETED = "DELETED"
    DOCUMENTS_REQUESTED = "DOCUMENTS_REQUESTED"
    REQUEST_APPROVED = "REQUEST_APPROVED"
    REQUEST_DECLINED = "REQUEST_DECLINED"
    TAMPERING_DETECTED = "TAMPERING_DETECTED"
    REDEMPTION_FAILED = "REDEMPTION_FAILED"


class FieldType(enum.StrEnum):
    """Type a metadata value (always sent as text) must parse as."""

    STRING = "string"
    INTEGER = "integer"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"


class SignatureAlgorithm(enum.StrEnum):
    """Algorithms an issuer key may use."""

    ES256 = "ES256"
    ED25519 = "Ed25519"


@dataclass(frozen=True)
class MetadataField:
    """One field of a type's metadata schema."""

    name: str
    type: FieldType
    required: bool = False
    description: str = ""


@dataclass(frozen=True)
class ValidityRule:
    """How long documents of a type stay valid."""

    requires_valid_until: bool = False
    max_validity_days: int = 0


@dataclass(frozen=True)
class DocumentType:
    """A catalogue entry."""

    code: str
    name: str
    name_en: str = ""
    issuing_agency_kinds: tuple[str, ...] = ()
    validity: ValidityRule = ValidityRule()
    metadata_fields: tuple[MetadataField, ...] = ()
    closed_schema: bool = False


@dataclass(frozen=True)
class IssuerKey:
    """An issuing agency's registered public key."""

    key_id: str
    agency_code: str
    agency_kind: str
    algorithm: SignatureAlgorithm
    public_key_pem: str
    registered_at: datetime


@dataclass(frozen=True)
class Blob:
    """One stored content object, shared by every document with the same bytes."""

    sha256: str
    size: int
    content_type: str
    created_at: datetime

    @property
    def key(self) -> str:
        return content_key(self.sha256)


def content_key(sha256_hex: str) -> str:
    """The object-storage key of content with this SHA-256."""
    return f"sha256/{sha256_hex}"


@dataclass
class Document:
    """A document in a citizen's wallet."""

    document_id: str
    citizen_id: str
    type_code: str
    trust_level: TrustLevel
    metadata: dict[str, str]
    content_sha256: str
    content_type: str
    size_bytes: int
    issued_at: datetime
    idempotency_scope: str
    idempotency_key: str
    title: str = ""
    issuer_agency: str = ""
    issuer_key_id: str = ""
    signature: bytes = b""
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    supersedes_document_id: str = ""
    superseded_by_document_id: str = ""
    stored_status: StoredStatus = StoredStatus.ACTIVE
    revoked_at: datetime | None = None
    revocation_reason: str = ""

    def status_at(self, now: datetime) -> DocumentStatus:
        """Revocation and replacement outrank the dates; the dates decide the rest."""
        if self.stored_status is StoredStatus.REVOKED:
            return DocumentStatus.REVOKED
        if self.stored_status is StoredStatus.SUPERSEDED:
            return DocumentStatus.SUPERSEDED
        if self.valid_from is not None and now < self.valid_from:
            return DocumentStatus.NOT_YET_VALID
        if self.valid_until is not None and now >= self.valid_until:
            return DocumentStatus.EXPIRED
        return DocumentStatus.VALID


@dataclass
class Share:
    """A citizen's consent for one agency to take documents for one dossier."""

    share_id: str
    citizen_id: str
    agency_code: str
    dossier_code: str
    procedure_code: str
    purpose: str
    document_ids: list[str]
    type_codes: list[str]
    created_at: datetime
    expires_at: datetime
    max_uses: int
    idempotency_key: str = ""
    use_count: int = 0
    revoked_at: datetime | None = None
    request_id: str = ""
    # Documents actually handed over, so the agency may later re-check their status (VerifyDocument).
    redeemed_document_ids: list[str] = field(default_factory=list)

    def in_force_at(self, now: datetime) -> bool:
        """Whether the agency may still look at what the share handed over: neither revoked nor expired. A
        used-up share still counts, so the agency can re-check the status of the documents it received."""
        return self.revoked_at is None and now < self.expires_at

    def status_at(self, now: datetime) -> ShareStatus:
        if self.revoked_at is not None:
            return ShareStatus.REVOKED
        if now >= self.expires_at:
            return ShareStatus.EXPIRED
        if self.max_uses and self.use_count >= self.max_uses:
            return ShareStatus.USED_UP
        return ShareStatus.ACTIVE


@dataclass
class DocumentRequest:
    """An agency's request for documents of given types for a dossier."""

    request_id: str
    citizen_id: str
    agency_code: str
    requested_by: str
    type_codes: list[str]
    dossier_code: str
    procedure_code: str
    purpose: str
    created_at: datetime
    idempotency_key: str = ""
    status: RequestStatus = RequestStatus.PENDING
    share_id: str = ""
    answered_at: datetime | None = None


@dataclass(frozen=True)
class Actor:
    """Who acted, as the access log records it: the person or system, and for whom under delegation."""

    subject: str
    kind: str
    agency: str = ""
    on_behalf_of: str = ""
    relation: str = ""


@dataclass(frozen=True)
class AccessLogEntry:
    """One link of a citizen's hash-chained access log."""

    citizen_id: str
    sequence: int
    action: AccessAction
    actor_subject: str
    actor_kind: str
    occurred_at: datetime
    previous_hash: str
    entry_hash: str
    agency_code: str = ""
    on_behalf_of: str = ""
    relation: str = ""
    document_id: str = ""
    share_id: str = ""
    request_id: str = ""
    dossier_code: str = ""
    procedure_code: str = ""
    detail: str = ""


def share_expiry_limit(now: datetime) -> datetime:
    return now + timedelta(days=MAX_SHARE_DAYS)
