"""Fakes for the wallet's ports (an in-memory unit of work beside the in-memory object store) and test helpers."""

from __future__ import annotations

import copy
import hashlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from servicekit.auth import Actor, Principal
from wallet_service.adapters.object_storage import InMemoryObjectStorage
from wallet_service.bootstrap import dev_issuer_keys, load_catalogue
from wallet_service.domain.access_log import GENESIS_HASH
from wallet_service.domain.manifest import manifest_bytes, sign
from wallet_service.domain.model import (
    AccessLogEntry,
    Blob,
    Document,
    DocumentRequest,
    DocumentType,
    IssuerKey,
    RequestStatus,
    Share,
    StoredStatus,
)
from wallet_service.service_layer import ports
from wallet_service.service_layer.handlers import IssueCommand, WalletHandlers

CITIZEN = "001099012345"
OTHER_CITIZEN = "079188000111"
JUSTICE = "STP-HCM"
POLICE = "CA-HCM"
RECEIVER = "UBND-Q1"
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"


@dataclass
class FakeDatabase:
    """The committed state every fake unit of work starts from."""

    types: dict[str, DocumentType] = field(default_factory=dict)
    keys: dict[str, IssuerKey] = field(default_factory=dict)
    blobs: dict[str, Blob] = field(default_factory=dict)
    documents: dict[str, Document] = field(default_factory=dict)
    shares: dict[str, Share] = field(default_factory=dict)
    requests: dict[str, DocumentRequest] = field(default_factory=dict)
    log: dict[str, list[AccessLogEntry]] = field(default_factory=dict)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    fail_next_commit: Exception | None = None
    commits: int = 0


class _Types:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def get(self, code: str) -> DocumentType | None:
        return self.state.types.get(code)

    def list(self, offset: int, limit: int) -> list[DocumentType]:
        return [self.state.types[code] for code in sorted(self.state.types)][offset:offset + limit]

    def put(self, document_type: DocumentType) -> None:
        self.state.types[document_type.code] = document_type


class _Keys:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def get(self, key_id: str) -> IssuerKey | None:
        return self.state.keys.get(key_id)

    def add(self, key: IssuerKey) -> None:
        self.state.keys[key.key_id] = key


class _Blobs:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def lock(self, sha256: str) -> None:
        return None

    def add_if_missing(self, blob: Blob) -> bool:
        if blob.sha256 in self.state.blobs:
            return False
        self.state.blobs[blob.sha256] = blob
        return True

    def delete(self, sha256: str) -> None:
        self.state.blobs.pop(sha256, None)

    def referenced(self, sha256: str) -> bool:
        return any(document.content_sha256 == sha256 for document in self.state.documents.values())

    def known(self, hashes: list[str]) -> set[str]:
        return {sha256 for sha256 in hashes if sha256 in self.state.blobs}


def _newest_first(items: list[Any], attribute: str) -> list[Any]:
    return sorted(items, key=lambda item: getattr(item, attribute), reverse=True)


class _Documents:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def get(self, document_id: str, *, lock: bool = False) -> Document | None:
        return self.state.documents.get(document_id)

    def by_idempotency(self, scope: str, key: str) -> Document | None:
        return next((document for document in self.state.documents.values()
                     if (document.idempotency_scope, document.idempotency_key) == (scope, key)), None)

    def add_unless_key_used(self, document: Document) -> bool:
        if self.by_idempotency(document.idempotency_scope, document.idempotency_key) is not None:
            return False
        self.state.documents[document.document_id] = copy.deepcopy(document)
        return True

    def update(self, document: Document) -> None:
        self.state.documents[document.document_id] = copy.deepcopy(document)

    def delete(self, document_id: str) -> None:
        self.state.documents.pop(document_id, None)

    def list(self, *, citizen_id: str = "", issuer_agency: str = "", type_code: str = "",
             active_at: datetime | None = None, offset: int = 0, limit: int = 50) -> list[Document]:
        found = [document for document in self.state.documents.values()
                 if (not citizen_id or document.citizen_id == citizen_id)
                 and (not issuer_agency or document.issuer_agency == issuer_agency)
                 and (not type_code or document.type_code == type_code)
                 and (active_at is None or (document.stored_status is StoredStatus.ACTIVE
                                            and (document.valid_until is None or document.valid_until > active_at)))]
        return _newest_first(found, "issued_at")[offset:offset + limit]


class _Shares:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def get(self, share_id: str, *, lock: bool = False) -> Share | None:
        return self.state.shares.get(share_id)

    def by_idempotency(self, citizen_id: str, key: str) -> Share | None:
        return next((share for share in self.state.shares.values()
                     if (share.citizen_id, share.idempotency_key) == (citizen_id, key)), None)

    def add(self, share: Share) -> None:
        self.state.shares[share.share_id] = copy.deepcopy(share)

    def update(self, share: Share) -> None:
        self.state.shares[share.share_id] = copy.deepcopy(share)

    def count_use(self, share_id: str) -> Share | None:
        stored = self.state.shares.get(share_id)
        if stored is None:
            return None
        before = copy.deepcopy(stored)
        stored.use_count += 1
        return before

    def set_redeemed(self, share_id: str, document_ids: list[str]) -> None:
        self.state.shares[share_id].redeemed_document_ids = list(document_ids)

    def list(self, *, citizen_id: str = "", agency_code: str = "", active_at: datetime | None = None,
             offset: int = 0, limit: int = 50) -> list[Share]:
        found = [share for share in self.state.shares.values()
                 if (not citizen_id or share.citizen_id == citizen_id)
                 and (not agency_code or share.agency_code == agency_code)
                 and (active_at is None or share.status_at(active_at).value == "ACTIVE")]
        return _newest_first(found, "created_at")[offset:offset + limit]


class _Requests:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def get(self, request_id: str, *, lock: bool = False) -> DocumentRequest | None:
        return self.state.requests.get(request_id)

    def by_idempotency(self, agency_code: str, key: str) -> DocumentRequest | None:
        return next((request for request in self.state.requests.values()
                     if (request.agency_code, request.idempotency_key) == (agency_code, key)), None)

    def add(self, request: DocumentRequest) -> None:
        self.state.requests[request.request_id] = copy.deepcopy(request)

    def update(self, request: DocumentRequest) -> None:
        self.state.requests[request.request_id] = copy.deepcopy(request)

    def list(self, *, citizen_id: str = "", agency_code: str = "", status: RequestStatus | None = None,
             offset: int = 0, limit: int = 50) -> list[DocumentRequest]:
        found = [request for request in self.state.requests.values()
                 if (not citizen_id or request.citizen_id == citizen_id)
                 and (not agency_code or request.agency_code == agency_code)
                 and (status is None or request.status is status)]
        return _newest_first(found, "created_at")[offset:offset + limit]


class FakeLog:
    def __init__(self, state: FakeDatabase) -> None:
        self.state = state

    def head(self, citizen_id: str, *, lock: bool) -> tuple[int, str]:
        return self.state.heads.get(citizen_id, (0, GENESIS_HASH))

    def append(self, entries: Sequence[AccessLogEntry]) -> None:
        for entry in entries:
            self.state.log.setdefault(entry.citizen_id, []).append(entry)
            self.state.heads[entry.citizen_id] = (entry.sequence, entry.entry_hash)

    def list(self, citizen_id: str, *, document_id: str = "", offset: int = 0, limit: int = 100
             ) -> list[AccessLogEntry]:
        entries = [entry for entry in reversed(self.state.log.get(citizen_id, []))
                   if not document_id or entry.document_id == document_id]
        return entries[offset:offset + limit]

    def chain(self, citizen_id: str) -> Iterator[AccessLogEntry]:
        yield from sorted(self.state.log.get(citizen_id, []), key=lambda entry: entry.sequence)


class FakeUnitOfWork:
    """Works on a copy of the committed state; ``commit`` publishes the copy, anything else discards it."""

    def __init__(self, database: FakeDatabase) -> None:
        self.database = database

    def __enter__(self) -> FakeUnitOfWork:
        self.state = copy.deepcopy(self.database)
        # Typed as the ports (as the SQL unit of work is), so the fake satisfies the UnitOfWork protocol.
        self.types: ports.DocumentTypeRepository = _Types(self.state)
        self.keys: ports.IssuerKeyRepository = _Keys(self.state)
        self.blobs: ports.BlobRepository = _Blobs(self.state)
        self.documents: ports.DocumentRepository = _Documents(self.state)
        self.shares: ports.ShareRepository = _Shares(self.state)
        self.requests: ports.RequestRepository = _Requests(self.state)
        self.log: ports.AccessLogRepository = FakeLog(self.state)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.rollback()

    def commit(self) -> None:
        if self.database.fail_next_commit is not None:
            failure, self.database.fail_next_commit = self.database.fail_next_commit, None
            raise failure
        for name in ("types", "keys", "blobs", "documents", "shares", "requests", "log", "heads"):
            setattr(self.database, name, copy.deepcopy(getattr(self.state, name)))
        self.database.commits += 1

    def rollback(self) -> None:
        return None


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Wallet:
    """Handlers on fakes, with the state a test inspects."""

    handlers: WalletHandlers
    database: FakeDatabase
    storage: InMemoryObjectStorage
    clock: Clock


def make_wallet() -> Wallet:
    database = FakeDatabase()
    storage = InMemoryObjectStorage()
    clock = Clock()
    counter = itertools.count(1)
    handlers = WalletHandlers(lambda: FakeUnitOfWork(database), storage, clock=clock,
                              id_factory=lambda: f"id-{next(counter):04d}")
    handlers.load_document_types(load_catalogue())
    for key in dev_issuer_keys().values():
        handlers.store_issuer_key(key_id=key.key_id, agency_code=key.agency_code, agency_kind=key.agency_kind,
                                  algorithm=key.algorithm, public_key_pem=key.public_key_pem)
    return Wallet(handlers, database, storage, clock)


def citizen(subject: str = CITIZEN, actor: Actor | None = None) -> Principal:
    return Principal(subject=subject, kind="citizen", level_of_assurance=2, actor=actor)


def agency(code: str, *scopes: str, kind: str = "client") -> Principal:
    return Principal(subject=f"{code.lower()}-system", kind=kind, scopes=frozenset(scopes), agency=code)


def admin() -> Principal:
    return Principal(subject="ops-admin", kind="official", scopes=frozenset({"wallet.admin"}), agency="DVC")


BIRTH_METADATA = {"full_name": "Nguyễn Văn An", "date_of_birth": "2015-04-30", "sex": "Nam",
                  "place_of_birth": "Quận 1, TP. Hồ Chí Minh", "registration_number": "123/2015",
                  "registered_on": "2015-05-04"}


def issue_command(content: bytes, *, citizen_id: str = CITIZEN, agency_code: str = JUSTICE,
                  type_code: str = "BIRTH_CERT", metadata: dict[str, str] | None = None,
                  idempotency_key: str = "issue-1", valid_from: datetime | None = None,
                  valid_until: datetime | None = None, supersedes: str = "",
                  signed_content: bytes | None = None) -> IssueCommand:
    """A command signed the way an issuer signs: over the manifest of ``signed_content`` (default: the content)."""
    key = dev_issuer_keys()[agency_code]
    metadata = dict(BIRTH_METADATA if metadata is None else metadata)
    digest = hashlib.sha256(content if signed_content is None else signed_content).hexdigest()
    manifest = manifest_bytes(citizen_id=citizen_id, content_sha256=digest, document_type=type_code,
                              issuer_agency=agency_code, metadata=metadata, valid_from=valid_from,
                              valid_until=valid_until, supersedes=supersedes)
    return IssueCommand(citizen_id=citizen_id, type_code=type_code, metadata=metadata, issuer_key_id=key.key_id,
                        signature=sign(key.private_key, manifest), idempotency_key=idempotency_key,
                        valid_from=valid_from, valid_until=valid_until, supersedes_document_id=supersedes)
