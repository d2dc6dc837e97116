"""The wallet's use cases: one method per command, the caller's Principal in, ports injected."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial

from servicekit.auth import KIND_CITIZEN, Principal
from servicekit.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ViolationCollector,
)
from wallet_service.domain import catalogue
from wallet_service.domain.access_log import ChainCheck, LogEvent, next_entry, verify_chain
from wallet_service.domain.content import MAX_CONTENT_BYTES, ReceivedContent, receive_content
from wallet_service.domain.manifest import (
    MAX_SIGNATURE_BYTES,
    PublicKey,
    SignatureChecks,
    document_manifest,
    load_public_key,
    manifest_bytes,
)
from wallet_service.domain.model import (
    DEFAULT_SHARE_DAYS,
    MAX_PRESIGNED_URL_SECONDS,
    MAX_SHARE_DAYS,
    NATIONAL_ID,
    AccessAction,
    AccessLogEntry,
    Actor,
    Blob,
    Document,
    DocumentRequest,
    DocumentType,
    IssuerKey,
    RequestStatus,
    Share,
    ShareStatus,
    SignatureAlgorithm,
    StoredStatus,
    TrustLevel,
    content_key,
)
from wallet_service.domain.verification import Verification, verify_document
from wallet_service.service_layer.ports import ObjectStorage, UnitOfWork

log = logging.getLogger("dvc.wallet")

SCOPE_ISSUE = "wallet.issue"
SCOPE_REDEEM = "wallet.redeem"
SCOPE_ADMIN = "wallet.admin"
ORPHAN_PREFIX = "sha256/"
_KEY_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_AGENCY_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CODE_TEXT = re.compile(r"[A-Za-z0-9._/-]{1,64}")
MAX_IDEMPOTENCY_KEY = 128
MAX_TEXT = 500


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def actor_of(principal: Principal) -> Actor:
    """Who acted, for the log: under token exchange the actor, acting for the token's subject."""
    if principal.actor is not None:
        return Actor(subject=principal.actor.subject, kind=principal.actor.kind or principal.kind,
                     agency=principal.actor.agency, on_behalf_of=principal.subject,
                     relation=principal.actor.relation)
    return Actor(subject=principal.subject, kind=principal.kind, agency=principal.agency)


def speaks_for_citizen(principal: Principal) -> bool:
    """A citizen's own token, or one identity's token exchange issued to act for a citizen (``act`` claim)."""
    return bool(NATIONAL_ID.fullmatch(principal.subject)) and (principal.kind == KIND_CITIZEN
                                                              or principal.actor is not None)


def wallet_owner(principal: Principal) -> str:
    """The wallet a citizen token reaches: its subject (for guardians and delegates, the person they act for)."""
    if not speaks_for_citizen(principal):
        raise PermissionDenied("this call is for the wallet's owner: use a citizen token (guardians and delegates "
                               "use the token identity's token exchange gives them)", reason="CITIZEN_TOKEN_REQUIRED")
    return principal.subject


def calling_agency(principal: Principal, scope: str) -> str:
    """The agency a token speaks for, once it has ``scope``."""
    principal.require_scope(scope)
    if not principal.agency:
        raise PermissionDenied("the token carries no 'agency' claim, so it cannot act for an agency",
                               reason="AGENCY_CLAIM_MISSING")
    return principal.agency


def _document_not_found(document_id: str) -> NotFound:
    # Same answer for "does not exist" and "not yours": ids must not reveal other wallets.
    return NotFound(f"document {document_id!r} not found", reason="DOCUMENT_NOT_FOUND",
                    metadata={"document_id": document_id})


def _share_not_found(share_id: str) -> NotFound:
    return NotFound(f"share {share_id!r} not found", reason="SHARE_NOT_FOUND", metadata={"share_id": share_id})


def _request_not_found(request_id: str) -> NotFound:
    return NotFound(f"document request {request_id!r} not found", reason="REQUEST_NOT_FOUND",
                    metadata={"request_id": request_id})


def _distinct(items: Iterable[str]) -> list[str]:
    """Each item once, in first-seen order."""
    return list(dict.fromkeys(items))


def _check_idempotency_key(problems: ViolationCollector, key: str) -> None:
    if not key.strip():
        problems.add("idempotency_key", "is required so a retry cannot create a second copy")
    elif len(key) > MAX_IDEMPOTENCY_KEY:
        problems.add("idempotency_key", f"at most {MAX_IDEMPOTENCY_KEY} characters")


def _check_citizen_id(problems: ViolationCollector, citizen_id: str, field_path: str = "citizen_id") -> None:
    if not NATIONAL_ID.fullmatch(citizen_id):
        problems.add(field_path, "must be the 12-digit national ID number")


def _check_code(problems: ViolationCollector, value: str, field_path: str) -> None:
    if not _CODE_TEXT.fullmatch(value):
        problems.add(field_path, "is required: 1-64 letters, digits, '.', '_', '-' or '/'")


@dataclass(frozen=True)
class IssueCommand:
    """The metadata message of IssueDocument."""

    citizen_id: str
    type_code: str
    metadata: dict[str, str]
    issuer_key_id: str
    signature: bytes
    idempotency_key: str
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    supersedes_document_id: str = ""
    content_sha256: str = ""


@dataclass(frozen=True)
class UploadCommand:
    """The metadata message of UploadOwnDocument."""

    type_code: str
    title: str
    metadata: dict[str, str]
    idempotency_key: str


@dataclass(frozen=True)
class ShareCommand:
    """What a citizen grants."""

    agency_code: str
    dossier_code: str
    procedure_code: str
    document_ids: tuple[str, ...] = ()
    type_codes: tuple[str, ...] = ()
    purpose: str = ""
    expires_at: datetime | None = None
    max_uses: int = 0
    idempotency_key: str = ""


@dataclass
class Delivery:
    """A document handed to a reader: the check done now, and the content or a presigned URL when intact."""

    document: Document
    verification: Verification
    content: bytes | None = None
    url: str = ""
    url_expires_at: datetime | None = None


@dataclass
class Redemption:
    """The share redeemed and the documents it resolved to."""

    share: Share
    documents: list[Document] = field(default_factory=list)


class WalletHandlers:
    """Every wallet use case. Log entries are written in the same transaction as the change they record."""

    def __init__(self, uow_factory: Callable[[], UnitOfWork], storage: ObjectStorage, *,
                 clock: Callable[[], datetime] = utc_now, id_factory: Callable[[], str] = new_id,
                 max_content_bytes: int = MAX_CONTENT_BYTES,
                 presigned_url_seconds: int = MAX_PRESIGNED_URL_SECONDS) -> None:
        self._uow = uow_factory
        self._storage = storage
        self._clock = clock
        self._new_id = id_factory
        self._max_content_bytes = max_content_bytes
        self._url_lifetime = timedelta(seconds=min(presigned_url_seconds, MAX_PRESIGNED_URL_SECONDS))
        # Types and keys are read on every issue; both are only ever added (keys never change once
        # registered), so a miss goes to the database and a hit is safe to keep.
        self._types: dict[str, DocumentType] = {}
        self._keys: dict[str, tuple[IssuerKey, PublicKey]] = {}
        # The issue-time check is remembered, so reads re-check the signature only when the manifest the
        # wallet holds differs from one already checked; the content hash is still recomputed on every read.
        self._signatures = SignatureChecks()

    # --- catalogue and keys -------------------------------------------------------------------------------

    def list_document_types(self, offset: int = 0, limit: int = 100) -> list[DocumentType]:
        with self._uow() as uow:
            return uow.types.list(offset, limit)

    def add_document_type(self, principal: Principal, document_type: DocumentType) -> DocumentType:
        principal.require_scope(SCOPE_ADMIN)
        catalogue.check_type(document_type)
        with self._uow() as uow:
            existing = uow.types.get(document_type.code)
            if existing is not None:
                if existing == document_type:
                    return existing
                raise AlreadyExists(f"document type {document_type.code} already exists with another definition",
                                    reason="DOCUMENT_TYPE_EXISTS", metadata={"code": document_type.code})
            uow.types.put(document_type)
            uow.commit()
        self._types[document_type.code] = document_type
        return document_type

    def load_document_types(self, document_types: Iterable[DocumentType]) -> None:
        """Start-up: the configured catalogue (seed file plus WALLET_DOCUMENT_TYPES_FILE) is authoritative
        for the codes it names; types added through the admin RPC are kept."""
        with self._uow() as uow:
            for document_type in document_types:
                if uow.types.get(document_type.code) != document_type:
                    uow.types.put(document_type)
            uow.commit()
        self._types.clear()

    def _document_type(self, uow: UnitOfWork, code: str) -> DocumentType | None:
        known = self._types.get(code)
        if known is None:
            known = uow.types.get(code)
            if known is not None:
                self._types[code] = known
        return known

    def register_issuer_key(self, principal: Principal, *, key_id: str, agency_code: str, agency_kind: str,
                            algorithm: SignatureAlgorithm | None, public_key_pem: str) -> IssuerKey:
        principal.require_scope(SCOPE_ADMIN)
        return self.store_issuer_key(key_id=key_id, agency_code=agency_code, agency_kind=agency_kind,
                                     algorithm=algorithm, public_key_pem=public_key_pem)

    def store_issuer_key(self, *, key_id: str, agency_code: str, agency_kind: str,
                         algorithm: SignatureAlgorithm | None, public_key_pem: str) -> IssuerKey:
        """Register a key (admin RPC, or the dev seed at start-up); re-registering the same key is a no-op."""
        problems = ViolationCollector()
        if not _KEY_ID.fullmatch(key_id):
            problems.add("key_id", "1-128 letters, digits, '.', '_', ':' or '-'")
        if not _AGENCY_CODE.fullmatch(agency_code):
            problems.add("agency_code", "1-64 letters, digits, '.', '_' or '-'")
        if not catalogue.AGENCY_KIND.fullmatch(agency_kind):
            problems.add("agency_kind", "must be UPPER_SNAKE_CASE, e.g. JUSTICE_DEPARTMENT")
        if algorithm is None:
            problems.add("algorithm", "must be ES256 or Ed25519")
        problems.raise_if_any("the issuer key is invalid")
        assert algorithm is not None
        public_key = load_public_key(public_key_pem, algorithm)
        key = IssuerKey(key_id=key_id, agency_code=agency_code, agency_kind=agency_kind, algorithm=algorithm,
                        public_key_pem=public_key_pem.strip() + "\n", registered_at=self._clock())
        with self._uow() as uow:
            existing = uow.keys.get(key_id)
            if existing is not None:
                if replace(existing, registered_at=key.registered_at) == key:
                    return existing
                raise AlreadyExists(f"issuer key {key_id!r} is already registered with other details; "
                                    "register a new key id instead", reason="ISSUER_KEY_EXISTS",
                                    metadata={"key_id": key_id})
            uow.keys.add(key)
            uow.commit()
        self._keys[key_id] = (key, public_key)
        return key

    def _issuer_key(self, uow: UnitOfWork, key_id: str) -> tuple[IssuerKey, PublicKey] | None:
        cached = self._keys.get(key_id)
        if cached is None:
            key = uow.keys.get(key_id)
            if key is None:
                return None
            cached = (key, load_public_key(key.public_key_pem, key.algorithm))
            self._keys[key_id] = cached
        return cached

    # --- issuing and uploading -------------------------------------------------------------------------------

    def issue_document(self, principal: Principal, command: IssueCommand,
                       chunks: Iterable[bytes]) -> tuple[Document, bool]:
        """Check everything the metadata alone can tell, receive and hash the content, verify the issuer's
        signature over the manifest, then store content and row together. Returns (document, replayed)."""
        agency = calling_agency(principal, SCOPE_ISSUE)
        now = self._clock()
        problems = ViolationCollector()
        _check_citizen_id(problems, command.citizen_id, "metadata.citizen_id")
        _check_idempotency_key(problems, command.idempotency_key)
        if not command.signature:
            problems.add("metadata.signature", "the issuer's signature over the manifest is required")
        elif len(command.signature) > MAX_SIGNATURE_BYTES:
            problems.add("metadata.signature", f"at most {MAX_SIGNATURE_BYTES} bytes: an ES256 or Ed25519 signature")
        if command.content_sha256 and not re.fullmatch(r"[0-9a-f]{64}", command.content_sha256):
            problems.add("metadata.content_sha256", "must be 64 lowercase hex digits")
        document_type = self._types.get(command.type_code)
        key = self._keys.get(command.issuer_key_id)
        if document_type is None or key is None:
            with self._uow() as uow:
                document_type = self._document_type(uow, command.type_code)
                key = self._issuer_key(uow, command.issuer_key_id)
        if document_type is None:
            problems.add("metadata.type_code", f"unknown document type {command.type_code!r}; see ListDocumentTypes")
        else:
            self._check_validity(problems, document_type, command, now)
        if key is None:
            problems.add("metadata.issuer_key_id", f"no issuer key {command.issuer_key_id!r} is registered")
        if problems.violations:
            reason = "UNKNOWN_DOCUMENT_TYPE" if document_type is None else "INVALID_ARGUMENT"
            summary = "; ".join(f"{v.field}: {v.description}" for v in problems.violations[:5])
            raise InvalidArgument(f"the document cannot be issued: {summary}", problems.violations, reason=reason)
        assert document_type is not None and key is not None
        catalogue.check_metadata(document_type, command.metadata, require_all=True, prefix="metadata.metadata")
        issuer_key, public_key = key
        if issuer_key.agency_code != agency:
            raise PermissionDenied(f"issuer key {issuer_key.key_id!r} belongs to agency {issuer_key.agency_code}, "
                                   f"not {agency}", reason="ISSUER_KEY_NOT_OWNED")
        if issuer_key.agency_kind not in document_type.issuing_agency_kinds:
            raise PermissionDenied(f"a {issuer_key.agency_kind} agency may not issue {document_type.code} "
                                   f"(allowed: {', '.join(document_type.issuing_agency_kinds)})",
                                   reason="AGENCY_KIND_NOT_ALLOWED")
        content = receive_content(chunks, max_bytes=self._max_content_bytes)
        try:
            if command.content_sha256 and command.content_sha256 != content.sha256:
                raise InvalidArgument.single("metadata.content_sha256", "does not match the SHA-256 of the content "
                                             "received", reason="CONTENT_HASH_MISMATCH")
            manifest = manifest_bytes(citizen_id=command.citizen_id, content_sha256=content.sha256,
                                      document_type=document_type.code, issuer_agency=agency,
                                      metadata=command.metadata, valid_from=command.valid_from,
                                      valid_until=command.valid_until, supersedes=command.supersedes_document_id)
            if not self._signatures.verifies(issuer_key.key_id, public_key, manifest, command.signature):
                raise InvalidArgument.single("metadata.signature", "does not verify with the issuer key over the "
                                             "manifest of this content and metadata", reason="BAD_ISSUER_SIGNATURE")
            document = Document(
                document_id=self._new_id(), citizen_id=command.citizen_id, type_code=document_type.code,
                trust_level=TrustLevel.ISSUED, metadata=dict(command.metadata), content_sha256=content.sha256,
                content_type=content.content_type, size_bytes=content.size, issued_at=now,
                idempotency_scope=f"agency:{agency}", idempotency_key=command.idempotency_key,
                title=document_type.name, issuer_agency=agency, issuer_key_id=issuer_key.key_id,
                signature=command.signature, valid_from=command.valid_from, valid_until=command.valid_until,
                supersedes_document_id=command.supersedes_document_id)
            return self._store(document, content, actor_of(principal),
                               LogEvent(AccessAction.ISSUED, document_id=document.document_id, agency_code=agency,
                                        detail=document_type.code))
        finally:
            content.close()

    @staticmethod
    def _check_validity(problems: ViolationCollector, document_type: DocumentType, command: IssueCommand,
                        now: datetime) -> None:
        rule = document_type.validity
        for name, moment in (("valid_from", command.valid_from), ("valid_until", command.valid_until)):
            if moment is not None and moment.microsecond:
                problems.add(f"metadata.{name}", "must be whole seconds (the manifest carries whole seconds)")
        if rule.requires_valid_until and command.valid_until is None:
            problems.add("metadata.valid_until", f"is required for {document_type.code}")
        if command.valid_until is None:
            return
        start = command.valid_from or now
        if command.valid_from is not None and command.valid_until <= command.valid_from:
            problems.add("metadata.valid_until", "must be after valid_from")
        elif rule.max_validity_days and command.valid_until - start > timedelta(days=rule.max_validity_days):
            problems.add("metadata.valid_until", f"{document_type.code} is valid at most "
                                                 f"{rule.max_validity_days} days")

    def upload_own_document(self, principal: Principal, command: UploadCommand,
                            chunks: Iterable[bytes]) -> tuple[Document, bool]:
        owner = wallet_owner(principal)
        problems = ViolationCollector()
        _check_idempotency_key(problems, command.idempotency_key)
        if len(command.title) > 200:
            problems.add("metadata.title", "at most 200 characters")
        document_type = None
        if command.type_code:
            with self._uow() as uow:
                document_type = self._document_type(uow, command.type_code)
            if document_type is None:
                raise InvalidArgument.single("metadata.type_code", f"unknown document type {command.type_code!r}; "
                                             "see ListDocumentTypes, or leave it empty", reason="UNKNOWN_DOCUMENT_TYPE")
        problems.raise_if_any("the upload is invalid")
        schema = document_type or DocumentType(code="UNCLASSIFIED", name="", issuing_agency_kinds=())
        catalogue.check_metadata(schema, command.metadata, require_all=False, prefix="metadata.metadata")
        content = receive_content(chunks, max_bytes=self._max_content_bytes)
        try:
            document = Document(
                document_id=self._new_id(), citizen_id=owner, type_code=command.type_code,
                trust_level=TrustLevel.SELF_UPLOADED, metadata=dict(command.metadata),
                content_sha256=content.sha256, content_type=content.content_type, size_bytes=content.size,
                issued_at=self._clock(), idempotency_scope=f"citizen:{owner}",
                idempotency_key=command.idempotency_key,
                title=command.title or (document_type.name if document_type else "Tài liệu tự tải lên"))
            return self._store(document, content, actor_of(principal),
                               LogEvent(AccessAction.UPLOADED, document_id=document.document_id,
                                        detail=command.type_code))
        finally:
            content.close()

    def _store(self, document: Document, content: ReceivedContent, actor: Actor,
               event: LogEvent) -> tuple[Document, bool]:
        """Put the content under its content-addressed key and commit the row and its log entry, all while
        holding the lock on the content hash. Content-addressed objects are immutable, so the put needs no
        temporary key: if anything fails before the commit, the object is removed again unless it was
        already stored for another document (then it was never ours to remove). Known content whose object is
        missing (lost to an earlier failure) is put again, so the new document does not point at nothing."""
        key = content_key(content.sha256)
        with self._uow() as uow:
            uow.blobs.lock(content.sha256)
            blob_is_new = uow.blobs.add_if_missing(Blob(sha256=content.sha256, size=content.size,
                                                        content_type=content.content_type,
                                                        created_at=document.issued_at))
            # The row goes in first (its unique key answers the idempotency question in the same statement);
            # on a used key the transaction is abandoned before anything was put.
            if not uow.documents.add_unless_key_used(document):
                return self._replayed(uow, document), True
            events = [event]
            if document.supersedes_document_id:
                events.append(self._supersede(uow, document.supersedes_document_id, document,
                                              "superseded by a new version"))
            try:
                if blob_is_new or not self._storage.exists(key):
                    content.body.seek(0)
                    self._storage.put(key, content.body, content.size, content.content_type)
                self._log(uow, document.citizen_id, actor, events)
                uow.commit()
            except BaseException:
                if blob_is_new:
                    self._remove_quietly(key)
                raise
        return document, False

    def _replayed(self, uow: UnitOfWork, document: Document) -> Document:
        """The document stored earlier under the same idempotency key, if this call repeats its request."""
        earlier = uow.documents.by_idempotency(document.idempotency_scope, document.idempotency_key)
        if earlier is None:  # removed again since the insert saw it (a citizen deleting an upload)
            raise Conflict("a concurrent request changed the same record; retry the call", reason="CONCURRENT_CHANGE")
        if not self._same_request(earlier, document):
            raise Conflict(f"idempotency key {document.idempotency_key!r} was already used for another "
                           "document", reason="IDEMPOTENCY_KEY_REUSED", metadata={"document_id": earlier.document_id})
        return earlier

    @staticmethod
    def _same_request(earlier: Document, again: Document) -> bool:
        if earlier.trust_level is TrustLevel.ISSUED:
            # Same manifest, not same signature bytes: ECDSA signatures differ on every signing.
            return document_manifest(earlier) == document_manifest(again)
        return (earlier.content_sha256 == again.content_sha256 and earlier.type_code == again.type_code
                and earlier.title == again.title and earlier.metadata == again.metadata)

    def _remove_quietly(self, key: str) -> None:
        try:
            self._storage.delete(key)
        except Exception:  # the orphan sweep removes what a failed cleanup leaves
            log.warning("could not remove content after a failed store", extra={"key": key}, exc_info=True)

    def _supersede(self, uow: UnitOfWork, old_id: str, replacement: Document, reason: str) -> LogEvent:
        old = uow.documents.get(old_id, lock=True)
        if old is None or old.issuer_agency != replacement.issuer_agency:
            raise _document_not_found(old_id)
        if old.citizen_id != replacement.citizen_id or old.type_code != replacement.type_code:
            raise FailedPrecondition("a document can only be superseded by one of the same citizen and type",
                                     reason="SUPERSEDE_MISMATCH")
        if old.stored_status is not StoredStatus.ACTIVE:
            raise FailedPrecondition(f"document {old_id!r} is {old.stored_status.value.lower()} and cannot be "
                                     "superseded", reason="DOCUMENT_NOT_ACTIVE")
        old.stored_status = StoredStatus.SUPERSEDED
        old.superseded_by_document_id = replacement.document_id
        old.revocation_reason = reason
        uow.documents.update(old)
        return LogEvent(AccessAction.SUPERSEDED, document_id=old.document_id, agency_code=replacement.issuer_agency,
                        detail=f"replaced by {replacement.document_id}")

    # --- reading -------------------------------------------------------------------------------------------

    def list_documents(self, principal: Principal, *, citizen_id: str = "", type_code: str = "",
                       include_inactive: bool = False, offset: int = 0, limit: int = 50) -> list[Document]:
        active_at = None if include_inactive else self._clock()
        with self._uow() as uow:
            if speaks_for_citizen(principal):
                owner = wallet_owner(principal)
                if citizen_id and citizen_id != owner:
                    raise PermissionDenied("a citizen lists only their own wallet", reason="NOT_YOUR_WALLET")
                return uow.documents.list(citizen_id=owner, type_code=type_code, active_at=active_at,
                                          offset=offset, limit=limit)
            agency = calling_agency(principal, SCOPE_ISSUE)
            return uow.documents.list(citizen_id=citizen_id, issuer_agency=agency, type_code=type_code,
                                      active_at=active_at, offset=offset, limit=limit)

    def _readable(self, uow: UnitOfWork, principal: Principal, document_id: str, *, shared_ok: bool) -> Document:
        """The document if this caller may read it: its owner, its issuer, or (``shared_ok``) an agency it was
        handed to through a share still in force (neither revoked nor expired)."""
        document = uow.documents.get(document_id)
        if document is None:
            raise _document_not_found(document_id)
        if speaks_for_citizen(principal):
            if document.citizen_id == wallet_owner(principal):
                return document
            raise _document_not_found(document_id)
        if principal.agency and principal.has_scope(SCOPE_ISSUE) and document.issuer_agency == principal.agency:
            return document
        if shared_ok and principal.agency and principal.has_scope(SCOPE_REDEEM):
            now = self._clock()
            for share in uow.shares.list(citizen_id=document.citizen_id, agency_code=principal.agency, limit=10_000):
                if share.in_force_at(now) and document_id in share.redeemed_document_ids:
                    return document
        raise _document_not_found(document_id)

    def get_document(self, principal: Principal, document_id: str) -> Document:
        with self._uow() as uow:
            document = self._readable(uow, principal, document_id, shared_ok=True)
            self._log(uow, document.citizen_id, actor_of(principal),
                      [LogEvent(AccessAction.READ, document_id=document_id)])
            uow.commit()
        return document

    def verify(self, principal: Principal, document_id: str) -> tuple[Document, Verification]:
        with self._uow() as uow:
            document = self._readable(uow, principal, document_id, shared_ok=True)
        verification, _ = self._check(document, read_content=True)
        self._record(document.citizen_id, principal,
                     LogEvent(AccessAction.VERIFIED, document_id=document_id,
                              detail=verification.verification_status.value))
        return document, verification

    def download(self, principal: Principal, document_id: str, *, presigned: bool) -> Delivery:
        """Re-verify, then hand over the content (or a short-lived URL). Tampered or missing content is
        logged and refused: it is never served."""
        with self._uow() as uow:
            document = self._readable(uow, principal, document_id, shared_ok=False)
        delivery = self._deliver(document, principal, presigned=presigned, read_content=True)
        if not delivery.verification.content_intact:
            raise FailedPrecondition(f"document {document_id!r} failed verification "
                                     f"({delivery.verification.verification_status.value}): "
                                     f"{delivery.verification.detail}; its content is not served",
                                     reason=f"CONTENT_{delivery.verification.verification_status.value}",
                                     metadata={"document_id": document_id,
                                               "verification_status": delivery.verification.verification_status.value})
        self._record(document.citizen_id, principal,
                     LogEvent(AccessAction.DOWNLOADED, document_id=document_id,
                              detail="presigned URL" if presigned else "streamed"))
        return delivery

    def _check(self, document: Document, *, read_content: bool) -> tuple[Verification, bytes | None]:
        content = None
        if read_content:
            content = self._storage.get(content_key(document.content_sha256), document.size_bytes)
        public_key: PublicKey | None = None
        if document.trust_level is TrustLevel.ISSUED:
            key = self._keys.get(document.issuer_key_id)
            if key is None:
                with self._uow() as uow:
                    key = self._issuer_key(uow, document.issuer_key_id)
            public_key = key[1] if key else None
        verification = verify_document(document, public_key=public_key, content=content,
                                       content_checked=read_content, now=self._clock(),
                                       check_signature=partial(self._signatures.verifies, document.issuer_key_id))
        return verification, content

    def _deliver(self, document: Document, principal: Principal, *, presigned: bool, read_content: bool) -> Delivery:
        verification, content = self._check(document, read_content=read_content)
        delivery = Delivery(document=document, verification=verification)
        if read_content and not verification.content_intact:
            log.warning("stored content failed verification", extra={
                "document_id": document.document_id, "verification_status": verification.verification_status})
            self._record(document.citizen_id, principal,
                         LogEvent(AccessAction.TAMPERING_DETECTED, document_id=document.document_id,
                                  detail=verification.verification_status.value))
            return delivery
        if presigned:
            delivery.url = self._storage.presigned_get_url(content_key(document.content_sha256), self._url_lifetime)
            delivery.url_expires_at = self._clock() + self._url_lifetime
        elif read_content:
            delivery.content = content
        return delivery

    # --- lifecycle -----------------------------------------------------------------------------------------

    def _issued_by_caller(self, uow: UnitOfWork, principal: Principal, document_id: str) -> Document:
        agency = calling_agency(principal, SCOPE_ISSUE)
        document = uow.documents.get(document_id, lock=True)
        if document is None or document.issuer_agency != agency:
            raise _document_not_found(document_id)
        return document

    def revoke_document(self, principal: Principal, document_id: str, reason: str) -> Document:
        if not reason.strip() or len(reason) > MAX_TEXT:
            raise InvalidArgument.single("reason", f"say why (1-{MAX_TEXT} characters); citizens and verifiers see it")
        with self._uow() as uow:
            document = self._issued_by_caller(uow, principal, document_id)
            if document.stored_status is StoredStatus.REVOKED:
                return document
            document.stored_status = StoredStatus.REVOKED
            document.revoked_at = self._clock()
            document.revocation_reason = reason
            uow.documents.update(document)
            self._log(uow, document.citizen_id, actor_of(principal),
                      [LogEvent(AccessAction.DOCUMENT_REVOKED, document_id=document_id, detail=reason)])
            uow.commit()
        return document

    def supersede_document(self, principal: Principal, document_id: str, replacement_id: str,
                           reason: str) -> tuple[Document, Document]:
        if document_id == replacement_id:
            raise InvalidArgument.single("replacement_document_id", "must differ from document_id")
        with self._uow() as uow:
            replacement = self._issued_by_caller(uow, principal, replacement_id)
            old = self._issued_by_caller(uow, principal, document_id)
            if old.superseded_by_document_id == replacement_id:
                return old, replacement
            if replacement.stored_status is not StoredStatus.ACTIVE:
                raise FailedPrecondition("the replacement must be an active document", reason="DOCUMENT_NOT_ACTIVE")
            event = self._supersede(uow, document_id, replacement, reason or "superseded by a new version")
            self._log(uow, old.citizen_id, actor_of(principal), [event])
            uow.commit()
            old = uow.documents.get(document_id) or old
        return old, replacement

    def delete_own_document(self, principal: Principal, document_id: str) -> bool:
        """Delete a citizen upload; its object goes too unless another document holds the same bytes."""
        owner = wallet_owner(principal)
        with self._uow() as uow:
            document = uow.documents.get(document_id)
            if document is None or document.citizen_id != owner:
                raise _document_not_found(document_id)
            if document.trust_level is not TrustLevel.SELF_UPLOADED:
                raise FailedPrecondition("issued documents are kept under the retention rules and cannot be "
                                         "deleted from the wallet; ask the issuer to revoke it",
                                         reason="ISSUED_DOCUMENT_RETAINED")
            uow.blobs.lock(document.content_sha256)
            uow.documents.delete(document_id)
            self._log(uow, owner, actor_of(principal), [LogEvent(AccessAction.DELETED, document_id=document_id,
                                                                 detail=document.title)])
            removed = not uow.blobs.referenced(document.content_sha256)
            if removed:
                uow.blobs.delete(document.content_sha256)
            uow.commit()
        if removed:
            # Only once the rows are gone for good: removed before a commit that then failed, the object would be
            # lost to every document holding these bytes. Should this fail, the orphan sweep removes it later.
            try:
                self._remove_unless_known(document.content_sha256)
            except Exception:
                log.warning("could not remove the content of a deleted upload", extra={
                    "key": content_key(document.content_sha256)}, exc_info=True)
        return removed

    # --- sharing -------------------------------------------------------------------------------------------

    def create_share(self, principal: Principal, command: ShareCommand) -> Share:
        owner = wallet_owner(principal)
        problems = ViolationCollector()
        _check_idempotency_key(problems, command.idempotency_key)
        with self._uow() as uow:
            earlier = uow.shares.by_idempotency(owner, command.idempotency_key) if command.idempotency_key else None
            if earlier is not None:
                # The stored share names each document and type once, so a retry is compared the same way.
                if (earlier.agency_code, earlier.dossier_code, earlier.document_ids, earlier.type_codes) \
                        == (command.agency_code, command.dossier_code, _distinct(command.document_ids),
                            _distinct(command.type_codes)):
                    return earlier
                raise Conflict(f"idempotency key {command.idempotency_key!r} was already used for another share",
                               reason="IDEMPOTENCY_KEY_REUSED", metadata={"share_id": earlier.share_id})
            share = self._new_share(uow, owner, command, problems)
            self._log(uow, owner, actor_of(principal), [self._shared_event(share)])
            uow.commit()
        return share

    @staticmethod
    def _shared_event(share: Share) -> LogEvent:
        items = [*share.document_ids, *(f"type:{code}" for code in share.type_codes)]
        return LogEvent(AccessAction.SHARED, share_id=share.share_id, dossier_code=share.dossier_code,
                        procedure_code=share.procedure_code, agency_code=share.agency_code,
                        request_id=share.request_id,
                        detail=f"{share.purpose} [{', '.join(items)}] until {share.expires_at.isoformat()}".strip())

    def _new_share(self, uow: UnitOfWork, owner: str, command: ShareCommand, problems: ViolationCollector,
                   request_id: str = "") -> Share:
        now = self._clock()
        if not _AGENCY_CODE.fullmatch(command.agency_code):
            problems.add("agency_code", "the receiving agency's code is required")
        _check_code(problems, command.dossier_code, "dossier_code")
        _check_code(problems, command.procedure_code, "procedure_code")
        if len(command.purpose) > MAX_TEXT:
            problems.add("purpose", f"at most {MAX_TEXT} characters")
        if not command.document_ids and not command.type_codes:
            problems.add("document_ids", "share at least one document or document type")
        if len(command.document_ids) + len(command.type_codes) > 50:
            problems.add("document_ids", "at most 50 documents and types in one share")
        expires_at = command.expires_at or now + timedelta(days=DEFAULT_SHARE_DAYS)
        if expires_at <= now:
            problems.add("expires_at", "must be in the future")
        elif expires_at > now + timedelta(days=MAX_SHARE_DAYS):
            problems.add("expires_at", f"at most {MAX_SHARE_DAYS} days ahead")
        if command.max_uses < 0:
            problems.add("max_uses", "1 for single use, 0 for unlimited until expiry, or a positive limit")
        for index, code in enumerate(command.type_codes):
            if self._document_type(uow, code) is None:
                problems.add(f"type_codes[{index}]", f"unknown document type {code!r}")
        problems.raise_if_any("the share is invalid")
        for document_id in command.document_ids:
            document = uow.documents.get(document_id)
            if document is None or document.citizen_id != owner:
                raise _document_not_found(document_id)
            if document.stored_status is StoredStatus.REVOKED:
                raise FailedPrecondition(f"document {document_id!r} was revoked by its issuer and cannot be shared",
                                         reason="DOCUMENT_REVOKED")
        share = Share(share_id=self._new_id(), citizen_id=owner, agency_code=command.agency_code,
                      dossier_code=command.dossier_code, procedure_code=command.procedure_code,
                      purpose=command.purpose, document_ids=_distinct(command.document_ids),
                      type_codes=_distinct(command.type_codes), created_at=now, expires_at=expires_at,
                      max_uses=command.max_uses, idempotency_key=command.idempotency_key, request_id=request_id)
        uow.shares.add(share)
        return share

    def list_shares(self, principal: Principal, *, include_inactive: bool = False, offset: int = 0,
                    limit: int = 50) -> list[Share]:
        active_at = None if include_inactive else self._clock()
        with self._uow() as uow:
            if speaks_for_citizen(principal):
                return uow.shares.list(citizen_id=wallet_owner(principal), active_at=active_at, offset=offset,
                                       limit=limit)
            agency = calling_agency(principal, SCOPE_REDEEM)
            return uow.shares.list(agency_code=agency, active_at=active_at, offset=offset, limit=limit)

    def revoke_share(self, principal: Principal, share_id: str) -> Share:
        owner = wallet_owner(principal)
        with self._uow() as uow:
            share = uow.shares.get(share_id, lock=True)
            if share is None or share.citizen_id != owner:
                raise _share_not_found(share_id)
            if share.revoked_at is not None:
                return share
            share.revoked_at = self._clock()
            uow.shares.update(share)
            self._log(uow, owner, actor_of(principal),
                      [LogEvent(AccessAction.SHARE_REVOKED, share_id=share_id, dossier_code=share.dossier_code,
                                procedure_code=share.procedure_code, agency_code=share.agency_code)])
            uow.commit()
        return share

    def redeem_share(self, principal: Principal, share_id: str) -> Redemption:
        """Count one use and resolve the documents; content is handed over per document by ``deliver``."""
        agency = calling_agency(principal, SCOPE_REDEEM)
        now = self._clock()
        with self._uow() as uow:
            share = uow.shares.count_use(share_id)
            if share is None:
                raise _share_not_found(share_id)
            if share.agency_code != agency:
                raise PermissionDenied(f"share {share_id!r} was granted to another agency; only {share.agency_code} "
                                       "may redeem it", reason="SHARE_WRONG_AGENCY")
            status = share.status_at(now)
            if status is not ShareStatus.ACTIVE:
                messages = {ShareStatus.REVOKED: "the citizen revoked this share",
                            ShareStatus.EXPIRED: f"this share expired at {share.expires_at.isoformat()}",
                            ShareStatus.USED_UP: f"this share allowed {share.max_uses} use(s), all redeemed"}
                raise FailedPrecondition(messages[status], reason=f"SHARE_{status.value}",
                                         metadata={"share_id": share_id})
            documents = self._resolve(uow, share, now)
            share.use_count += 1
            redeemed = list(dict.fromkeys(
                [*share.redeemed_document_ids, *(document.document_id for document in documents)]))
            if redeemed != share.redeemed_document_ids:
                share.redeemed_document_ids = redeemed
                uow.shares.set_redeemed(share_id, redeemed)
            events = [LogEvent(AccessAction.REDEEMED, document_id=document.document_id, share_id=share_id,
                               dossier_code=share.dossier_code, procedure_code=share.procedure_code,
                               agency_code=agency, detail=share.purpose)
                      for document in documents] or [
                LogEvent(AccessAction.REDEEMED, share_id=share_id, dossier_code=share.dossier_code,
                         procedure_code=share.procedure_code, agency_code=agency, detail="no documents matched")]
            self._log(uow, share.citizen_id, actor_of(principal), events)
            uow.commit()
        return Redemption(share=share, documents=documents)

    @staticmethod
    def _resolve(uow: UnitOfWork, share: Share, now: datetime) -> list[Document]:
        found: dict[str, Document] = {}
        for document_id in share.document_ids:
            document = uow.documents.get(document_id)
            if document is not None and document.citizen_id == share.citizen_id:
                found[document_id] = document
        for code in share.type_codes:
            for document in uow.documents.list(citizen_id=share.citizen_id, type_code=code, active_at=now,
                                               limit=100):
                found.setdefault(document.document_id, document)
        return list(found.values())

    def give_back_use(self, principal: Principal, share_id: str, reason: str) -> None:
        """A redemption failed on the platform's side (storage unreachable) before its documents were handed
        over: the use it counted is given back, so a single-use share is not spent on nothing, and the citizen's
        log says so next to the REDEEMED entries it keeps."""
        agency = calling_agency(principal, SCOPE_REDEEM)
        with self._uow() as uow:
            share = uow.shares.get(share_id, lock=True)
            if share is None or share.agency_code != agency or share.use_count == 0:
                return
            share.use_count -= 1
            uow.shares.update(share)
            self._log(uow, share.citizen_id, actor_of(principal),
                      [LogEvent(AccessAction.REDEMPTION_FAILED, share_id=share_id, dossier_code=share.dossier_code,
                                procedure_code=share.procedure_code, agency_code=agency, detail=reason[:MAX_TEXT])])
            uow.commit()

    def deliver(self, principal: Principal, document: Document, *, presigned: bool, read_content: bool) -> Delivery:
        """Verify one redeemed document now and attach its content or URL when it is intact."""
        return self._deliver(document, principal, presigned=presigned, read_content=read_content)

    # --- requests for documents ------------------------------------------------------------------------------

    def request_documents(self, principal: Principal, *, citizen_id: str, type_codes: list[str], dossier_code: str,
                          procedure_code: str, purpose: str, idempotency_key: str) -> DocumentRequest:
        agency = calling_agency(principal, SCOPE_REDEEM)
        problems = ViolationCollector()
        _check_citizen_id(problems, citizen_id)
        _check_code(problems, dossier_code, "dossier_code")
        _check_code(problems, procedure_code, "procedure_code")
        _check_idempotency_key(problems, idempotency_key)
        if not type_codes:
            problems.add("type_codes", "name at least one document type")
        if len(purpose) > MAX_TEXT:
            problems.add("purpose", f"at most {MAX_TEXT} characters")
        with self._uow() as uow:
            for index, code in enumerate(type_codes):
                if self._document_type(uow, code) is None:
                    problems.add(f"type_codes[{index}]", f"unknown document type {code!r}")
            problems.raise_if_any("the request is invalid")
            earlier = uow.requests.by_idempotency(agency, idempotency_key)
            if earlier is not None:
                if (earlier.citizen_id, earlier.type_codes, earlier.dossier_code) == (citizen_id, list(type_codes),
                                                                                      dossier_code):
                    return earlier
                raise Conflict(f"idempotency key {idempotency_key!r} was already used for another request",
                               reason="IDEMPOTENCY_KEY_REUSED", metadata={"request_id": earlier.request_id})
            request = DocumentRequest(request_id=self._new_id(), citizen_id=citizen_id, agency_code=agency,
                                      requested_by=actor_of(principal).subject, type_codes=list(type_codes),
                                      dossier_code=dossier_code, procedure_code=procedure_code, purpose=purpose,
                                      created_at=self._clock(), idempotency_key=idempotency_key)
            uow.requests.add(request)
            self._log(uow, citizen_id, actor_of(principal),
                      [LogEvent(AccessAction.DOCUMENTS_REQUESTED, request_id=request.request_id,
                                dossier_code=dossier_code, procedure_code=procedure_code, agency_code=agency,
                                detail=f"{purpose} [{', '.join(type_codes)}]".strip())])
            uow.commit()
        return request

    def answer_document_request(self, principal: Principal, request_id: str, *, approve: bool | None,
                                document_ids: tuple[str, ...] = (), expires_at: datetime | None = None,
                                max_uses: int = 0) -> tuple[DocumentRequest, Share | None]:
        owner = wallet_owner(principal)
        if approve is None:
            raise InvalidArgument.single("decision", "choose APPROVE or DECLINE")
        with self._uow() as uow:
            request = uow.requests.get(request_id, lock=True)
            if request is None or request.citizen_id != owner:
                raise _request_not_found(request_id)
            wanted = RequestStatus.APPROVED if approve else RequestStatus.DECLINED
            if request.status is not RequestStatus.PENDING:
                if request.status is wanted:
                    return request, uow.shares.get(request.share_id) if request.share_id else None
                raise FailedPrecondition(f"this request was already {request.status.value.lower()}",
                                         reason="REQUEST_ALREADY_ANSWERED")
            actor = actor_of(principal)
            share = None
            request.status = wanted
            request.answered_at = self._clock()
            events = []
            if approve:
                command = ShareCommand(agency_code=request.agency_code, dossier_code=request.dossier_code,
                                       procedure_code=request.procedure_code, document_ids=tuple(document_ids),
                                       type_codes=() if document_ids else tuple(request.type_codes),
                                       purpose=request.purpose, expires_at=expires_at, max_uses=max_uses,
                                       idempotency_key=f"request:{request_id}")
                share = self._new_share(uow, owner, command, ViolationCollector(), request_id=request_id)
                request.share_id = share.share_id
                events.append(LogEvent(AccessAction.REQUEST_APPROVED, request_id=request_id,
                                       share_id=share.share_id, dossier_code=request.dossier_code,
                                       procedure_code=request.procedure_code, agency_code=request.agency_code))
                events.append(self._shared_event(share))
            else:
                events.append(LogEvent(AccessAction.REQUEST_DECLINED, request_id=request_id,
                                       dossier_code=request.dossier_code, procedure_code=request.procedure_code,
                                       agency_code=request.agency_code))
            uow.requests.update(request)
            self._log(uow, owner, actor, events)
            uow.commit()
        return request, share

    def list_document_requests(self, principal: Principal, *, status: RequestStatus | None = None, offset: int = 0,
                               limit: int = 50) -> list[DocumentRequest]:
        with self._uow() as uow:
            if speaks_for_citizen(principal):
                return uow.requests.list(citizen_id=wallet_owner(principal), status=status, offset=offset,
                                         limit=limit)
            agency = calling_agency(principal, SCOPE_REDEEM)
            return uow.requests.list(agency_code=agency, status=status, offset=offset, limit=limit)

    # --- access log ----------------------------------------------------------------------------------------

    def _log(self, uow: UnitOfWork, citizen_id: str, actor: Actor, events: list[LogEvent]) -> None:
        """Append to the citizen's chain inside the caller's transaction (the head row stays locked until
        it commits, so concurrent writers to one wallet queue up instead of forking the chain)."""
        sequence, previous = uow.log.head(citizen_id, lock=True)
        now = self._clock()
        entries = []
        for event in events:
            sequence += 1
            entry = next_entry(citizen_id, sequence, previous, actor, event, now)
            entries.append(entry)
            previous = entry.entry_hash
        uow.log.append(entries)

    def _record(self, citizen_id: str, principal: Principal, event: LogEvent) -> None:
        with self._uow() as uow:
            self._log(uow, citizen_id, actor_of(principal), [event])
            uow.commit()

    def list_access_log(self, principal: Principal, *, document_id: str = "", offset: int = 0,
                        limit: int = 100) -> list[AccessLogEntry]:
        owner = wallet_owner(principal)
        with self._uow() as uow:
            return uow.log.list(owner, document_id=document_id, offset=offset, limit=limit)

    def verify_access_log(self, principal: Principal) -> ChainCheck:
        owner = wallet_owner(principal)
        with self._uow() as uow:
            # Head first, then the whole chain: entries and head move in one transaction, so a chain longer than
            # the head read before it was either appended meanwhile (read both again) or written without moving
            # the head, which is tampering: after a few reads that still disagree, the check says so.
            for _ in range(3):
                head = uow.log.head(owner, lock=False)
                entries = list(uow.log.chain(owner))
                if not entries or entries[-1].sequence <= head[0]:
                    break
            return verify_chain(iter(entries), head=head)

    # --- housekeeping --------------------------------------------------------------------------------------

    def sweep_orphans(self, grace: timedelta) -> int:
        """Remove content objects no blob row knows, older than ``grace`` (left by a crash between the put and
        the commit); younger ones may belong to an upload still in flight."""
        cutoff = self._clock() - grace
        candidates = [item for item in self._storage.list(ORPHAN_PREFIX) if item.last_modified < cutoff]
        removed = 0
        for start in range(0, len(candidates), 500):
            hashes = [item.key.removeprefix(ORPHAN_PREFIX) for item in candidates[start:start + 500]]
            with self._uow() as uow:
                known = uow.blobs.known(hashes)
            unknown = [sha256 for sha256 in hashes if sha256 not in known]
            removed += sum(self._remove_unless_known(sha256) for sha256 in unknown)
        return removed

    def _remove_unless_known(self, sha256: str) -> bool:
        """Remove the object of content no blob row records. Re-checked under the hash lock: an issue of the same
        bytes may have committed since the caller looked, and one in flight waits until we are done."""
        with self._uow() as uow:
            uow.blobs.lock(sha256)
            if uow.blobs.known([sha256]):
                return False
            self._storage.delete(content_key(sha256))
            return True
