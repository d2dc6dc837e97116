"""The gRPC face of the wallet: turns dvc.wallet.v1 messages into handler calls and domain objects back."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime

import grpc
from dvc.wallet.v1 import wallet_pb2 as pb
from dvc.wallet.v1 import wallet_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from servicekit.auth import current_principal
from servicekit.errors import InvalidArgument, Unavailable
from servicekit.grpc_server import ServiceRegistration
from wallet_service.domain.access_log import ChainCheck
from wallet_service.domain.catalogue import check_type
from wallet_service.domain.model import (
    AccessLogEntry,
    Document,
    DocumentRequest,
    DocumentType,
    FieldType,
    IssuerKey,
    MetadataField,
    RequestStatus,
    Share,
    SignatureAlgorithm,
    ValidityRule,
)
from wallet_service.domain.verification import Verification
from wallet_service.service_layer.handlers import (
    Delivery,
    IssueCommand,
    ShareCommand,
    UploadCommand,
    WalletHandlers,
    utc_now,
)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["WalletService"].full_name
PUBLIC_METHODS = frozenset({"ListDocumentTypes"})
CHUNK_BYTES = 512 * 1024
MAX_PAGE_SIZE = 500


def _timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def _moment(message: object, field_name: str) -> datetime | None:
    if not message.HasField(field_name):  # type: ignore[attr-defined]
        return None
    stamp: Timestamp = getattr(message, field_name)
    return stamp.ToDatetime(tzinfo=UTC)


def _page(token: str, size: int, default: int, maximum: int = MAX_PAGE_SIZE) -> tuple[int, int]:
    """(offset, limit) from an opaque page token and page size."""
    if size < 0:
        raise InvalidArgument.single("page_size", "must not be negative")
    limit = min(size or default, maximum)
    if not token:
        return 0, limit
    try:
        decoded = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
        kind, _, value = decoded.partition(":")
        offset = int(value)
        if kind != "o" or offset < 0:
            raise ValueError(decoded)
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidArgument.single("page_token", "is not a token this service returned") from None
    return offset, limit


def _next_token(offset: int, limit: int, fetched: int) -> str:
    # Handlers are asked for limit + 1 rows: the extra one only proves there is a next page.
    return base64.urlsafe_b64encode(f"o:{offset + limit}".encode("ascii")).decode("ascii") if fetched > limit else ""


def _enum(enum_type: object, prefix: str, value: str) -> int:
    return int(enum_type.Value(f"{prefix}_{value.upper()}"))  # type: ignore[attr-defined]


_FIELD_TYPES = {field_type: _enum(pb.MetadataFieldType, "METADATA_FIELD_TYPE", field_type.value)
                for field_type in FieldType}
_FIELD_TYPES_BACK = {number: field_type for field_type, number in _FIELD_TYPES.items()}
_ALGORITHMS = {SignatureAlgorithm.ES256: pb.SIGNATURE_ALGORITHM_ES256,
               SignatureAlgorithm.ED25519: pb.SIGNATURE_ALGORITHM_ED25519}
_ALGORITHMS_BACK = {number: algorithm for algorithm, number in _ALGORITHMS.items()}


def document_type_message(document_type: DocumentType) -> pb.DocumentType:
    return pb.DocumentType(
        code=document_type.code, name=document_type.name, name_en=document_type.name_en,
        issuing_agency_kinds=list(document_type.issuing_agency_kinds),
        validity=pb.ValidityRule(requires_valid_until=document_type.validity.requires_valid_until,
                                 max_validity_days=document_type.validity.max_validity_days),
        metadata_fields=[pb.MetadataField(name=item.name, type=_FIELD_TYPES[item.type],  # type: ignore[arg-type]
                                          required=item.required, description=item.description)
                         for item in document_type.metadata_fields],
        closed_schema=document_type.closed_schema)


def document_type_from_message(message: pb.DocumentType) -> DocumentType:
    fields = []
    for index, item in enumerate(message.metadata_fields):
        if item.type not in _FIELD_TYPES_BACK:
            raise InvalidArgument.single(f"document_type.metadata_fields[{index}].type", "choose a field type")
        fields.append(MetadataField(name=item.name, type=_FIELD_TYPES_BACK[item.type], required=item.required,
                                    description=item.description))
    document_type = DocumentType(
        code=message.code, name=message.name, name_en=message.name_en,
        issuing_agency_kinds=tuple(message.issuing_agency_kinds),
        validity=ValidityRule(requires_valid_until=message.validity.requires_valid_until,
                              max_validity_days=message.validity.max_validity_days),
        metadata_fields=tuple(fields), closed_schema=message.closed_schema)
    check_type(document_type)
    return document_type


def issuer_key_message(key: IssuerKey) -> pb.IssuerKey:
    return pb.IssuerKey(key_id=key.key_id, agency_code=key.agency_code, agency_kind=key.agency_kind,
                        algorithm=_ALGORITHMS[key.algorithm], public_key_pem=key.public_key_pem,
                        registered_at=_timestamp(key.registered_at))


def document_message(document: Document, now: datetime) -> pb.Document:
    return pb.Document(
        document_id=document.document_id, citizen_id=document.citizen_id, type_code=document.type_code,
        trust_level=_enum(pb.TrustLevel, "TRUST_LEVEL", document.trust_level.value),  # type: ignore[arg-type]
        status=_enum(pb.DocumentStatus, "DOCUMENT_STATUS", document.status_at(now).value),  # type: ignore[arg-type]
        issuer_agency=document.issuer_agency, issuer_key_id=document.issuer_key_id, metadata=document.metadata,
        valid_from=_timestamp(document.valid_from), valid_until=_timestamp(document.valid_until),
        issued_at=_timestamp(document.issued_at), content_sha256=document.content_sha256,
        content_type=document.content_type, size_bytes=document.size_bytes,
        supersedes_document_id=document.supersedes_document_id,
        superseded_by_document_id=document.superseded_by_document_id, revoked_at=_timestamp(document.revoked_at),
        revocation_reason=document.revocation_reason, title=document.title, signature=document.signature)


def verification_message(verification: Verification) -> pb.Verification:
    return pb.Verification(
        verification_status=_enum(pb.VerificationStatus, "VERIFICATION_STATUS",  # type: ignore[arg-type]
                                  verification.verification_status.value),
        document_status=_enum(pb.DocumentStatus, "DOCUMENT_STATUS",  # type: ignore[arg-type]
                              verification.document_status.value),
        trust_level=_enum(pb.TrustLevel, "TRUST_LEVEL", verification.trust_level.value),  # type: ignore[arg-type]
        valid=verification.valid, expected_sha256=verification.expected_sha256,
        actual_sha256=verification.actual_sha256, signature_valid=verification.signature_valid,
        checked_at=_timestamp(verification.checked_at), detail=verification.detail,
        content_checked=verification.content_checked)


def share_message(share: Share, now: datetime) -> pb.Share:
    return pb.Share(
        share_id=share.share_id, citizen_id=share.citizen_id, agency_code=share.agency_code,
        dossier_code=share.dossier_code, procedure_code=share.procedure_code, purpose=share.purpose,
        document_ids=share.document_ids, type_codes=share.type_codes, created_at=_timestamp(share.created_at),
        expires_at=_timestamp(share.expires_at), max_uses=share.max_uses, use_count=share.use_count,
        status=_enum(pb.ShareStatus, "SHARE_STATUS", share.status_at(now).value),  # type: ignore[arg-type]
        revoked_at=_timestamp(share.revoked_at), request_id=share.request_id)


def request_message(request: DocumentRequest) -> pb.DocumentRequest:
    return pb.DocumentRequest(
        request_id=request.request_id, citizen_id=request.citizen_id, agency_code=request.agency_code,
        type_codes=request.type_codes, dossier_code=request.dossier_code, procedure_code=request.procedure_code,
        purpose=request.purpose,
        status=_enum(pb.DocumentRequestStatus, "DOCUMENT_REQUEST_STATUS",  # type: ignore[arg-type]
                     request.status.value),
        share_id=request.share_id, created_at=_timestamp(request.created_at),
        answered_at=_timestamp(request.answered_at))


def entry_message(entry: AccessLogEntry) -> pb.AccessLogEntry:
    return pb.AccessLogEntry(
        sequence=entry.sequence,
        action=_enum(pb.AccessAction, "ACCESS_ACTION", entry.action.value),  # type: ignore[arg-type]
        actor_subject=entry.actor_subject, actor_kind=entry.actor_kind, agency_code=entry.agency_code,
        on_behalf_of=entry.on_behalf_of, relation=entry.relation, document_id=entry.document_id,
        share_id=entry.share_id, dossier_code=entry.dossier_code, procedure_code=entry.procedure_code,
        detail=entry.detail, occurred_at=_timestamp(entry.occurred_at), previous_hash=entry.previous_hash,
        entry_hash=entry.entry_hash, request_id=entry.request_id)


def _first_metadata(messages: Iterator[pb.IssueDocumentRequest] | Iterator[pb.UploadOwnDocumentRequest]) -> object:
    first = next(messages, None)
    if first is None or first.WhichOneof("part") != "metadata":
        raise InvalidArgument.single("metadata", "the first message of the stream must carry the metadata",
                                     reason="METADATA_FIRST")
    return first.metadata


def _chunks(messages: Iterable[pb.IssueDocumentRequest] | Iterable[pb.UploadOwnDocumentRequest]) -> Iterator[bytes]:
    for message in messages:
        if message.WhichOneof("part") != "chunk":
            raise InvalidArgument.single("metadata", "only content chunks may follow the metadata",
                                         reason="METADATA_FIRST")
        yield message.chunk


def _pieces(content: bytes) -> Iterator[bytes]:
    for start in range(0, len(content), CHUNK_BYTES):
        yield content[start:start + CHUNK_BYTES]


def _delivery(request_delivery: int) -> tuple[bool, bool]:
    """(presigned, read_content) for a ContentDelivery value."""
    if request_delivery == pb.CONTENT_DELIVERY_PRESIGNED_URL:
        return True, True
    if request_delivery == pb.CONTENT_DELIVERY_NONE:
        return False, False
    return False, True


class WalletServicer(wallet_pb2_grpc.WalletServiceServicer):
    """dvc.wallet.v1.WalletService over WalletHandlers."""

    def __init__(self, handlers: WalletHandlers, clock: Callable[[], datetime] = utc_now) -> None:
        self.handlers = handlers
        self._now = clock

    def ListDocumentTypes(self, request: pb.ListDocumentTypesRequest,
                          context: grpc.ServicerContext) -> pb.ListDocumentTypesResponse:
        offset, limit = _page(request.page_token, request.page_size, 100)
        types = self.handlers.list_document_types(offset, limit + 1)
        return pb.ListDocumentTypesResponse(document_types=[document_type_message(item) for item in types[:limit]],
                                            next_page_token=_next_token(offset, limit, len(types)))

    def AddDocumentType(self, request: pb.AddDocumentTypeRequest,
                        context: grpc.ServicerContext) -> pb.AddDocumentTypeResponse:
        principal = current_principal()
        stored = self.handlers.add_document_type(principal, document_type_from_message(request.document_type))
        return pb.AddDocumentTypeResponse(document_type=document_type_message(stored))

    def RegisterIssuerKey(self, request: pb.RegisterIssuerKeyRequest,
                          context: grpc.ServicerContext) -> pb.RegisterIssuerKeyResponse:
        key = self.handlers.register_issuer_key(
            current_principal(), key_id=request.key_id, agency_code=request.agency_code,
            agency_kind=request.agency_kind, algorithm=_ALGORITHMS_BACK.get(request.algorithm),
            public_key_pem=request.public_key_pem)
        return pb.RegisterIssuerKeyResponse(issuer_key=issuer_key_message(key))

    def IssueDocument(self, request_iterator: Iterator[pb.IssueDocumentRequest],
                      context: grpc.ServicerContext) -> pb.IssueDocumentResponse:
        principal = current_principal()
        metadata: pb.IssueDocumentMetadata = _first_metadata(request_iterator)  # type: ignore[assignment]
        command = IssueCommand(
            citizen_id=metadata.citizen_id, type_code=metadata.type_code, metadata=dict(metadata.metadata),
            issuer_key_id=metadata.issuer_key_id, signature=metadata.signature,
            idempotency_key=metadata.idempotency_key, valid_from=_moment(metadata, "valid_from"),
            valid_until=_moment(metadata, "valid_until"), supersedes_document_id=metadata.supersedes_document_id,
            content_sha256=metadata.content_sha256)
        document, replayed = self.handlers.issue_document(principal, command, _chunks(request_iterator))
        return pb.IssueDocumentResponse(document=document_message(document, self._now()), replayed=replayed)

    def UploadOwnDocument(self, request_iterator: Iterator[pb.UploadOwnDocumentRequest],
                          context: grpc.ServicerContext) -> pb.UploadOwnDocumentResponse:
        principal = current_principal()
        metadata: pb.UploadOwnDocumentMetadata = _first_metadata(request_iterator)  # type: ignore[assignment]
        command = UploadCommand(type_code=metadata.type_code, title=metadata.title, metadata=dict(metadata.metadata),
                                idempotency_key=metadata.idempotency_key)
        document, replayed = self.handlers.upload_own_document(principal, command, _chunks(request_iterator))
        return pb.UploadOwnDocumentResponse(document=document_message(document, self._now()), replayed=replayed)

    def ListDocuments(self, request: pb.ListDocumentsRequest,
                      context: grpc.ServicerContext) -> pb.ListDocumentsResponse:
        offset, limit = _page(request.page_token, request.page_size, 50)
        documents = self.handlers.list_documents(current_principal(), citizen_id=request.citizen_id,
                                                 type_code=request.type_code,
                                                 include_inactive=request.include_inactive, offset=offset,
                                                 limit=limit + 1)
        now = self._now()
        return pb.ListDocumentsResponse(documents=[document_message(item, now) for item in documents[:limit]],
                                        next_page_token=_next_token(offset, limit, len(documents)))

    def GetDocument(self, request: pb.GetDocumentRequest, context: grpc.ServicerContext) -> pb.GetDocumentResponse:
        document = self.handlers.get_document(current_principal(), request.document_id)
        return pb.GetDocumentResponse(document=document_message(document, self._now()))

    def DownloadDocument(self, request: pb.DownloadDocumentRequest,
                         context: grpc.ServicerContext) -> Iterator[pb.DownloadDocumentResponse]:
        principal = current_principal()
        presigned, _ = _delivery(request.delivery)
        if request.delivery == pb.CONTENT_DELIVERY_NONE:
            raise InvalidArgument.single("delivery", "choose STREAM or PRESIGNED_URL (VerifyDocument checks "
                                         "without content)")
        delivery = self.handlers.download(principal, request.document_id, presigned=presigned)
        yield pb.DownloadDocumentResponse(header=self._header(delivery))
        for piece in _pieces(delivery.content or b""):
            yield pb.DownloadDocumentResponse(chunk=piece)

    def _header(self, delivery: Delivery) -> pb.DownloadHeader:
        return pb.DownloadHeader(document=document_message(delivery.document, self._now()),
                                 verification=verification_message(delivery.verification),
                                 download_url=delivery.url, download_url_expires_at=_timestamp(delivery.url_expires_at))

    def VerifyDocument(self, request: pb.VerifyDocumentRequest,
                       context: grpc.ServicerContext) -> pb.VerifyDocumentResponse:
        document, verification = self.handlers.verify(current_principal(), request.document_id)
        return pb.VerifyDocumentResponse(document=document_message(document, self._now()),
                                         verification=verification_message(verification))

    def RevokeDocument(self, request: pb.RevokeDocumentRequest,
                       context: grpc.ServicerContext) -> pb.RevokeDocumentResponse:
        document = self.handlers.revoke_document(current_principal(), request.document_id, request.reason)
        return pb.RevokeDocumentResponse(document=document_message(document, self._now()))

    def SupersedeDocument(self, request: pb.SupersedeDocumentRequest,
                          context: grpc.ServicerContext) -> pb.SupersedeDocumentResponse:
        old, replacement = self.handlers.supersede_document(current_principal(), request.document_id,
                                                            request.replacement_document_id, request.reason)
        now = self._now()
        return pb.SupersedeDocumentResponse(document=document_message(old, now),
                                            replacement=document_message(replacement, now))

    def DeleteOwnDocument(self, request: pb.DeleteOwnDocumentRequest,
                          context: grpc.ServicerContext) -> pb.DeleteOwnDocumentResponse:
        removed = self.handlers.delete_own_document(current_principal(), request.document_id)
        return pb.DeleteOwnDocumentResponse(content_removed=removed)

    def CreateShare(self, request: pb.CreateShareRequest, context: grpc.ServicerContext) -> pb.CreateShareResponse:
        command = ShareCommand(agency_code=request.agency_code, dossier_code=request.dossier_code,
                               procedure_code=request.procedure_code, document_ids=tuple(request.document_ids),
                               type_codes=tuple(request.type_codes), purpose=request.purpose,
                               expires_at=_moment(request, "expires_at"), max_uses=request.max_uses,
                               idempotency_key=request.idempotency_key)
        share = self.handlers.create_share(current_principal(), command)
        return pb.CreateShareResponse(share=share_message(share, self._now()))

    def ListShares(self, request: pb.ListSharesRequest, context: grpc.ServicerContext) -> pb.ListSharesResponse:
        offset, limit = _page(request.page_token, request.page_size, 50)
        shares = self.handlers.list_shares(current_principal(), include_inactive=request.include_inactive,
                                           offset=offset, limit=limit + 1)
        now = self._now()
        return pb.ListSharesResponse(shares=[share_message(item, now) for item in shares[:limit]],
                                     next_page_token=_next_token(offset, limit, len(shares)))

    def RevokeShare(self, request: pb.RevokeShareRequest, context: grpc.ServicerContext) -> pb.RevokeShareResponse:
        share = self.handlers.revoke_share(current_principal(), request.share_id)
        return pb.RevokeShareResponse(share=share_message(share, self._now()))

    def RedeemShare(self, request: pb.RedeemShareRequest,
                    context: grpc.ServicerContext) -> Iterator[pb.RedeemShareResponse]:
        principal = current_principal()
        presigned, read_content = _delivery(request.delivery)
        redemption = self.handlers.redeem_share(principal, request.share_id)
        yield pb.RedeemShareResponse(share=share_message(redemption.share, self._now()))
        handed_over = False
        for document in redemption.documents:
            try:
                delivery = self.handlers.deliver(principal, document, presigned=presigned, read_content=read_content)
            except Unavailable as failure:
                # Nothing could be handed over: a retry must not find the share used up. Once one document went
                # out the use stands, or a single-use share could hand that document over twice.
                if not handed_over:
                    self.handlers.give_back_use(principal, request.share_id, failure.message)
                raise
            handed_over = True
            follows = delivery.content is not None
            yield pb.RedeemShareResponse(document=pb.RedeemedDocument(
                document=document_message(document, self._now()),
                verification=verification_message(delivery.verification), download_url=delivery.url,
                download_url_expires_at=_timestamp(delivery.url_expires_at), content_follows=follows))
            for piece in _pieces(delivery.content or b""):
                yield pb.RedeemShareResponse(chunk=pb.ContentChunk(document_id=document.document_id, data=piece))

    def RequestDocuments(self, request: pb.RequestDocumentsRequest,
                         context: grpc.ServicerContext) -> pb.RequestDocumentsResponse:
        made = self.handlers.request_documents(
            current_principal(), citizen_id=request.citizen_id, type_codes=list(request.type_codes),
            dossier_code=request.dossier_code, procedure_code=request.procedure_code, purpose=request.purpose,
            idempotency_key=request.idempotency_key)
        return pb.RequestDocumentsResponse(request=request_message(made))

    def AnswerDocumentRequest(self, request: pb.AnswerDocumentRequestRequest,
                              context: grpc.ServicerContext) -> pb.AnswerDocumentRequestResponse:
        decision = {pb.ANSWER_DECISION_APPROVE: True, pb.ANSWER_DECISION_DECLINE: False}.get(request.decision)
        answered, share = self.handlers.answer_document_request(
            current_principal(), request.request_id, approve=decision, document_ids=tuple(request.document_ids),
            expires_at=_moment(request, "expires_at"), max_uses=request.max_uses)
        return pb.AnswerDocumentRequestResponse(request=request_message(answered),
                                                share=share_message(share, self._now()) if share else None)

    def ListDocumentRequests(self, request: pb.ListDocumentRequestsRequest,
                             context: grpc.ServicerContext) -> pb.ListDocumentRequestsResponse:
        offset, limit = _page(request.page_token, request.page_size, 50)
        status = None
        if request.status != pb.DOCUMENT_REQUEST_STATUS_UNSPECIFIED:
            status = RequestStatus(pb.DocumentRequestStatus.Name(request.status)
                                   .removeprefix("DOCUMENT_REQUEST_STATUS_"))
        requests = self.handlers.list_document_requests(current_principal(), status=status, offset=offset,
                                                        limit=limit + 1)
        return pb.ListDocumentRequestsResponse(requests=[request_message(item) for item in requests[:limit]],
                                               next_page_token=_next_token(offset, limit, len(requests)))

    def ListAccessLog(self, request: pb.ListAccessLogRequest,
                      context: grpc.ServicerContext) -> pb.ListAccessLogResponse:
        offset, limit = _page(request.page_token, request.page_size, 100, maximum=1000)
        entries = self.handlers.list_access_log(current_principal(), document_id=request.document_id,
                                                offset=offset, limit=limit + 1)
        return pb.ListAccessLogResponse(entries=[entry_message(item) for item in entries[:limit]],
                                        next_page_token=_next_token(offset, limit, len(entries)))

    def VerifyAccessLog(self, request: pb.VerifyAccessLogRequest,
                        context: grpc.ServicerContext) -> pb.VerifyAccessLogResponse:
        check: ChainCheck = self.handlers.verify_access_log(current_principal())
        return pb.VerifyAccessLogResponse(intact=check.intact, entries_checked=check.entries_checked,
                                          first_broken_sequence=check.first_broken_sequence, problem=check.problem,
                                          head_hash=check.head_hash)


def wallet_registration(handlers: WalletHandlers, clock: Callable[[], datetime] = utc_now) -> ServiceRegistration:
    return ServiceRegistration(wallet_pb2_grpc.add_WalletServiceServicer_to_server,
                               WalletServicer(handlers, clock), SERVICE_NAME)
