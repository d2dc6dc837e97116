"""The ports the wallet's handlers depend on: object storage and a unit of work over its repositories."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import IO, Protocol, Self

from wallet_service.domain.model import (
    AccessLogEntry,
    Blob,
    Document,
    DocumentRequest,
    DocumentType,
    IssuerKey,
    RequestStatus,
    Share,
)


@dataclass(frozen=True)
class StoredObject:
    """A key in the bucket and when it was last written."""

    key: str
    last_modified: datetime


class ObjectStorage(Protocol):
    """Where document content lives (S3 in production, memory in unit tests). Every call has a timeout."""

    def put(self, key: str, body: IO[bytes], length: int, content_type: str) -> None: ...

    def get(self, key: str, max_bytes: int) -> bytes | None:
        """The object's bytes (at most ``max_bytes`` + 1, so an overgrown object shows), or None if missing."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key`` (without reading it)."""
        ...

    def delete(self, key: str) -> None: ...

    def presigned_get_url(self, key: str, expires: timedelta) -> str: ...

    def list(self, prefix: str) -> Iterator[StoredObject]: ...

    def check(self) -> None:
        """Raise if the store cannot be reached (readiness)."""
        ...


class DocumentTypeRepository(Protocol):
    def get(self, code: str) -> DocumentType | None: ...

    def list(self, offset: int, limit: int) -> list[DocumentType]: ...

    def put(self, document_type: DocumentType) -> None:
        """Insert, or replace the definition with the same code."""
        ...


class IssuerKeyRepository(Protocol):
    def get(self, key_id: str) -> IssuerKey | None: ...

    def add(self, key: IssuerKey) -> None: ...


class BlobRepository(Protocol):
    def lock(self, sha256: str) -> None:
        """Serialise every change touching this content hash until the transaction ends."""
        ...

    def add_if_missing(self, blob: Blob) -> bool:
        """Record the content unless it is already recorded; True when this call added it."""
        ...

    def delete(self, sha256: str) -> None: ...

    def referenced(self, sha256: str) -> bool:
        """Whether any document still points at this content."""
        ...

    def known(self, hashes: list[str]) -> set[str]:
        """Which of ``hashes`` have a blob row."""
        ...


class DocumentRepository(Protocol):
    def get(self, document_id: str, *, lock: bool = False) -> Document | None: ...

    def by_idempotency(self, scope: str, key: str) -> Document | None: ...

    def add_unless_key_used(self, document: Document) -> bool:
        """Store the document unless one with its idempotency scope and key exists; False then."""
        ...

    def update(self, document: Document) -> None: ...

    def delete(self, document_id: str) -> None: ...

    def list(self, *, citizen_id: str = "", issuer_agency: str = "", type_code: str = "",
             active_at: datetime | None = None, offset: int = 0, limit: int = 50) -> list[Document]:
        """Newest first; ``active_at`` keeps only documents neither revoked, superseded nor expired then."""
        ...


class ShareRepository(Protocol):
    def get(self, share_id: str, *, lock: bool = False) -> Share | None: ...

    def by_idempotency(self, citizen_id: str, key: str) -> Share | None: ...

    def add(self, share: Share) -> None: ...

    def count_use(self, share_id: str) -> Share | None:
        """Add one use to the stored share and lock it until the transaction ends; returns the share as it
        stood before this use (None if unknown). A caller that refuses the use rolls the count back."""
        ...

    def set_redeemed(self, share_id: str, document_ids: list[str]) -> None:
        """Record the documents handed out through the share so far."""
        ...

    def update(self, share: Share) -> None: ...

    def list(self, *, citizen_id: str = "", agency_code: str = "", active_at: datetime | None = None,
             offset: int = 0, limit: int = 50) -> list[Share]: ...


class RequestRepository(Protocol):
    def get(self, request_id: str, *, lock: bool = False) -> DocumentRequest | None: ...

    def by_idempotency(self, agency_code: str, key: str) -> DocumentRequest | None: ...

    def add(self, request: DocumentRequest) -> None: ...

    def update(self, request: DocumentRequest) -> None: ...

    def list(self, *, citizen_id: str = "", agency_code: str = "", status: RequestStatus | None = None,
             offset: int = 0, limit: int = 50) -> list[DocumentRequest]: ...


class AccessLogRepository(Protocol):
    def head(self, citizen_id: str, *, lock: bool) -> tuple[int, str]:
        """(last sequence, last hash); (0, genesis) for an empty log. ``lock`` holds the head until commit."""
        ...

    def append(self, entries: Sequence[AccessLogEntry]) -> None:
        """Store consecutive entries (at least one) and move the head to the last of them."""
        ...

    def list(self, citizen_id: str, *, document_id: str = "", offset: int = 0, limit: int = 100
             ) -> list[AccessLogEntry]:
        """Newest first."""
        ...

    def chain(self, citizen_id: str) -> Iterator[AccessLogEntry]:
        """Every entry, oldest first."""
        ...


class UnitOfWork(Protocol):
    """One transaction over every repository: ``with uow: ...; uow.commit()``."""

    types: DocumentTypeRepository
    keys: IssuerKeyRepository
    blobs: BlobRepository
    documents: DocumentRepository
    shares: ShareRepository
    requests: RequestRepository
    log: AccessLogRepository

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...
