"""The wallet as the pages see it: calls to dvc.wallet.v1.WalletService with the signed-in citizen's token,
answers turned into small views for the templates, failures into CallFailed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc
from dvc.wallet.v1 import wallet_pb2 as pb
from dvc.wallet.v1 import wallet_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from servicekit.grpc_client import service_channel
from servicekit.web.grpc_calls import CallFailed, call_failed
from wallet_service.domain.content import MAX_CONTENT_BYTES

TYPES_CACHE_SECONDS = 300
UPLOAD_CHUNK_BYTES = 512 * 1024


@dataclass(frozen=True)
class DocumentView:
    """One document's metadata and standing."""

    document_id: str
    title: str
    type_code: str
    trust: str                  # issued | self_uploaded
    status: str                 # valid | not_yet_valid | expired | revoked | superseded
    issuer_agency: str
    issued_at: datetime | None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    content_type: str = ""
    size_bytes: int = 0
    content_sha256: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    revocation_reason: str = ""
    superseded_by: str = ""


@dataclass(frozen=True)
class VerificationView:
    """The outcome of re-checking a document's content and signature."""

    status: str                 # verified | tampered | signature_invalid | content_missing | unsigned_intact
    valid: bool
    checked_at: datetime | None
    detail: str = ""


@dataclass(frozen=True)
class ShareView:
    share_id: str
    agency_code: str
    dossier_code: str
    procedure_code: str
    purpose: str
    document_ids: list[str]
    type_codes: list[str]
    created_at: datetime | None
    expires_at: datetime | None
    max_uses: int
    use_count: int
    status: str                 # active | expired | revoked | used_up
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class AccessEntryView:
    sequence: int
    action: str                 # issued | uploaded | read | downloaded | ... (AccessAction without its prefix)
    actor_subject: str
    actor_kind: str
    agency_code: str
    on_behalf_of: str
    relation: str
    document_id: str
    share_id: str
    dossier_code: str
    procedure_code: str
    detail: str
    occurred_at: datetime | None


@dataclass(frozen=True)
class DocumentTypeView:
    code: str
    name: str
    name_en: str


@dataclass(frozen=True)
class ShareRequest:
    """What the citizen filled in to grant a share."""

    document_ids: list[str]
    agency_code: str
    dossier_code: str
    procedure_code: str
    purpose: str
    expires_at: datetime
    max_uses: int
    idempotency_key: str


@dataclass(frozen=True)
class Download:
    """A verified document's whole content, in the pieces the wallet sent it."""

    document: DocumentView
    chunks: list[bytes]

    @property
    def size(self) -> int:
        return sum(len(piece) for piece in self.chunks)


class WalletPort(Protocol):
    """The calls the pages make; every one is on behalf of the citizen whose token is passed."""

    def list_documents(self, token: str, *, include_inactive: bool = False, page_token: str = "",
                       page_size: int = 20) -> tuple[list[DocumentView], str]: ...

    def get_document(self, token: str, document_id: str) -> DocumentView: ...

    def verify_document(self, token: str, document_id: str) -> VerificationView: ...

    def download(self, token: str, document_id: str) -> Download: ...

    def upload(self, token: str, *, title: str, type_code: str, idempotency_key: str,
               content: Iterable[bytes]) -> DocumentView: ...

    def document_types(self) -> list[DocumentTypeView]: ...

    def create_share(self, token: str, request: ShareRequest) -> ShareView: ...

    def list_shares(self, token: str, *, include_inactive: bool = False, page_token: str = "",
                    page_size: int = 50) -> tuple[list[ShareView], str]: ...

    def revoke_share(self, token: str, share_id: str) -> ShareView: ...

    def access_log(self, token: str, *, page_token: str = "", page_size: int = 50
                   ) -> tuple[list[AccessEntryView], str]: ...

    def verify_access_log(self, token: str) -> tuple[bool, int]: ...


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def _moment(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    value: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return value


def _stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment.astimezone(UTC))
    return value


def _name(enum: Any, prefix: str, value: int) -> str:
    return str(enum.Name(value)).removeprefix(prefix + "_").lower()


def document_view(message: pb.Document) -> DocumentView:
    return DocumentView(
        document_id=message.document_id, title=message.title, type_code=message.type_code,
        trust=_name(pb.TrustLevel, "TRUST_LEVEL", message.trust_level),
        status=_name(pb.DocumentStatus, "DOCUMENT_STATUS", message.status), issuer_agency=message.issuer_agency,
        issued_at=_moment(message, "issued_at"), valid_from=_moment(message, "valid_from"),
        valid_until=_moment(message, "valid_until"), content_type=message.content_type,
        size_bytes=message.size_bytes, content_sha256=message.content_sha256, metadata=dict(message.metadata),
        revocation_reason=message.revocation_reason, superseded_by=message.superseded_by_document_id)


def verification_view(message: pb.Verification) -> VerificationView:
    return VerificationView(status=_name(pb.VerificationStatus, "VERIFICATION_STATUS", message.verification_status),
                            valid=message.valid, checked_at=_moment(message, "checked_at"), detail=message.detail)


def share_view(message: pb.Share) -> ShareView:
    return ShareView(
        share_id=message.share_id, agency_code=message.agency_code, dossier_code=message.dossier_code,
        procedure_code=message.procedure_code, purpose=message.purpose, document_ids=list(message.document_ids),
        type_codes=list(message.type_codes), created_at=_moment(message, "created_at"),
        expires_at=_moment(message, "expires_at"), max_uses=message.max_uses, use_count=message.use_count,
        status=_name(pb.ShareStatus, "SHARE_STATUS", message.status), revoked_at=_moment(message, "revoked_at"))


def entry_view(message: pb.AccessLogEntry) -> AccessEntryView:
    return AccessEntryView(
        sequence=message.sequence, action=_name(pb.AccessAction, "ACCESS_ACTION", message.action),
        actor_subject=message.actor_subject, actor_kind=message.actor_kind, agency_code=message.agency_code,
        on_behalf_of=message.on_behalf_of, relation=message.relation, document_id=message.document_id,
        share_id=message.share_id, dossier_code=message.dossier_code, procedure_code=message.procedure_code,
        detail=message.detail, occurred_at=_moment(message, "occurred_at"))


class GrpcWallet:
    """WalletPort over the wallet's own gRPC API: the pages hold no privileges of their own."""

    def __init__(self, target: str, *, timeout_seconds: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._channel = service_channel(target)
        self._stub = wallet_pb2_grpc.WalletServiceStub(self._channel)
        self._timeout = timeout_seconds
        self._transfer_timeout = timeout_seconds * 6
        self._clock = clock
        self._types: tuple[float, list[DocumentTypeView]] | None = None
        self._types_lock = threading.Lock()

    def close(self) -> None:
        self._channel.close()

    def _unary(self, method: Callable[..., Any], message: Any, token: str = "") -> Any:
        try:
            return method(message, metadata=bearer(token) if token else None, timeout=self._timeout)
        except grpc.RpcError as error:
            raise call_failed(error) from None

    def list_documents(self, token: str, *, include_inactive: bool = False, page_token: str = "",
                       page_size: int = 20) -> tuple[list[DocumentView], str]:
        answer = self._unary(self._stub.ListDocuments, pb.ListDocumentsRequest(
            include_inactive=include_inactive, page_size=page_size, page_token=page_token), token)
        return [document_view(item) for item in answer.documents], answer.next_page_token

    def get_document(self, token: str, document_id: str) -> DocumentView:
        answer = self._unary(self._stub.GetDocument, pb.GetDocumentRequest(document_id=document_id), token)
        return document_view(answer.document)

    def verify_document(self, token: str, document_id: str) -> VerificationView:
        answer = self._unary(self._stub.VerifyDocument, pb.VerifyDocumentRequest(document_id=document_id), token)
        return verification_view(answer.verification)

    def download(self, token: str, document_id: str) -> Download:
        stream = self._stub.DownloadDocument(
            pb.DownloadDocumentRequest(document_id=document_id, delivery=pb.CONTENT_DELIVERY_STREAM),
            metadata=bearer(token), timeout=self._transfer_timeout)
        # The whole content is read here, within the stream's deadline, and the page sends it from memory: passed
        # through at the browser's pace, a download slower than the deadline allows was cut off part-way. Memory
        # stays bounded by the wallet's own content limit (the wallet holds the same bytes to send them), and
        # unlike a temporary file it leaves no copy of a citizen's document on the pod's disk.
        chunks: list[bytes] = []
        size = 0
        try:
            header = next(stream).header
            for message in stream:
                chunks.append(message.chunk)
                size += len(message.chunk)
                if size > MAX_CONTENT_BYTES:
                    raise CallFailed(grpc.StatusCode.INTERNAL, "CONTENT_TOO_LARGE",
                                     "the wallet sent more than its content limit")
        except grpc.RpcError as error:
            raise call_failed(error) from None
        finally:
            stream.cancel()
        return Download(document_view(header.document), chunks)

    def upload(self, token: str, *, title: str, type_code: str, idempotency_key: str,
               content: Iterable[bytes]) -> DocumentView:
        def messages() -> Iterator[pb.UploadOwnDocumentRequest]:
            yield pb.UploadOwnDocumentRequest(metadata=pb.UploadOwnDocumentMetadata(
                type_code=type_code, title=title, idempotency_key=idempotency_key))
            for piece in content:
                yield pb.UploadOwnDocumentRequest(chunk=piece)

        try:
            answer = self._stub.UploadOwnDocument(messages(), metadata=bearer(token), timeout=self._transfer_timeout)
        except grpc.RpcError as error:
            raise call_failed(error) from None
        return document_view(answer.document)

    def document_types(self) -> list[DocumentTypeView]:
        """The public catalogue, kept a few minutes: it changes rarely and every page shows type names."""
        with self._types_lock:
            if self._types is not None and self._clock() - self._types[0] < TYPES_CACHE_SECONDS:
                return self._types[1]
        answer = self._unary(self._stub.ListDocumentTypes, pb.ListDocumentTypesRequest(page_size=500))
        types = [DocumentTypeView(item.code, item.name, item.name_en) for item in answer.document_types]
        with self._types_lock:
            self._types = (self._clock(), types)
        return types

    def create_share(self, token: str, request: ShareRequest) -> ShareView:
        answer = self._unary(self._stub.CreateShare, pb.CreateShareRequest(
            document_ids=request.document_ids, agency_code=request.agency_code, dossier_code=request.dossier_code,
            procedure_code=request.procedure_code, purpose=request.purpose, expires_at=_stamp(request.expires_at),
            max_uses=request.max_uses, idempotency_key=request.idempotency_key), token)
        return share_view(answer.share)

    def list_shares(self, token: str, *, include_inactive: bool = False, page_token: str = "",
                    page_size: int = 50) -> tuple[list[ShareView], str]:
        answer = self._unary(self._stub.ListShares, pb.ListSharesRequest(
            include_inactive=include_inactive, page_size=page_size, page_token=page_token), token)
        return [share_view(item) for item in answer.shares], answer.next_page_token

    def revoke_share(self, token: str, share_id: str) -> ShareView:
        answer = self._unary(self._stub.RevokeShare, pb.RevokeShareRequest(share_id=share_id), token)
        return share_view(answer.share)

    def access_log(self, token: str, *, page_token: str = "", page_size: int = 50
                   ) -> tuple[list[AccessEntryView], str]:
        answer = self._unary(self._stub.ListAccessLog, pb.ListAccessLogRequest(
            page_size=page_size, page_token=page_token), token)
        return [entry_view(item) for item in answer.entries], answer.next_page_token

    def verify_access_log(self, token: str) -> tuple[bool, int]:
        answer = self._unary(self._stub.VerifyAccessLog, pb.VerifyAccessLogRequest(), token)
        return bool(answer.intact), int(answer.entries_checked)
