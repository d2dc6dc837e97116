"""Helpers of the wallet's integration tests: a gRPC client with platform tokens, and storage/row counters."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import grpc
from dvc.wallet.v1 import wallet_pb2 as pb
from dvc.wallet.v1 import wallet_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from minio import Minio
from sqlalchemy import text
from sqlalchemy.engine import Engine

from servicekit.testing import LocalTokenIssuer, bearer, violations_of  # noqa: F401 - tests import it from here
from wallet_service.bootstrap import dev_issuer_keys
from wallet_service.domain.manifest import manifest_bytes, sign

AUDIENCE = "dvc-wallet"
JUSTICE = "STP-HCM"
RECEIVER = "UBND-Q1"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n"
BIRTH_METADATA = {"full_name": "Nguyễn Thị Mai", "date_of_birth": "2016-09-02", "sex": "Nữ",
                  "place_of_birth": "Phường Bến Nghé, Quận 1, TP. Hồ Chí Minh", "registration_number": "45/2016",
                  "registered_on": "2016-09-10"}
TABLES = ("wallet_documents", "wallet_blobs", "wallet_access_log", "wallet_shares", "wallet_document_requests")


def new_citizen() -> str:
    """A 12-digit national ID no other test uses, so tests sharing one server never see each other's data."""
    return f"{uuid.uuid4().int % 10**12:012d}"


def unique_pdf(label: str = "") -> bytes:
    return PDF + f"% {label} {uuid.uuid4().hex}\n".encode()


def stamp(moment: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(moment)
    return value


def reason_of(error: grpc.RpcError) -> str:
    """The ErrorInfo reason the service put in the status details."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status on {error}"
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    raise AssertionError(f"no ErrorInfo in {status}")


@dataclass
class WalletApi:
    """The running wallet as a client sees it, plus direct access to its bucket and database for checks."""

    stub: wallet_pb2_grpc.WalletServiceStub
    tokens: LocalTokenIssuer
    s3: Minio
    bucket: str
    engine: Engine
    http_url: str

    # --- callers -------------------------------------------------------------------------------------------

    def citizen(self, subject: str, act: dict[str, Any] | None = None) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens.mint(subject, audience=AUDIENCE, kind="citizen", act=act))

    def issuer(self, agency: str = JUSTICE) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens.mint(f"{agency.lower()}-system", audience=AUDIENCE, kind="client",
                                       scopes=("wallet.issue",), agency=agency))

    def receiver(self, agency: str = RECEIVER) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens.mint(f"{agency.lower()}-system", audience=AUDIENCE, kind="client",
                                       scopes=("wallet.redeem",), agency=agency))

    def admin(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.tokens.mint("ops-admin", audience=AUDIENCE, kind="official", scopes=("wallet.admin",),
                                       agency="DVC"))

    # --- issuing -------------------------------------------------------------------------------------------

    def issue_messages(self, content: bytes, citizen_id: str, *, agency: str = JUSTICE, type_code: str = "BIRTH_CERT",
                       metadata: dict[str, str] | None = None, key: str = "", supersedes: str = "",
                       signed_content: bytes | None = None, valid_until: datetime | None = None,
                       chunk_bytes: int = 64 * 1024, private_key: Any = None, key_id: str = ""
                       ) -> Iterator[pb.IssueDocumentRequest]:
        """The IssueDocument stream an issuer sends: metadata signed over the manifest, then the chunks."""
        dev_key = dev_issuer_keys().get(agency)
        metadata = dict(BIRTH_METADATA if metadata is None else metadata)
        digest = hashlib.sha256(content if signed_content is None else signed_content).hexdigest()
        manifest = manifest_bytes(citizen_id=citizen_id, content_sha256=digest, document_type=type_code,
                                  issuer_agency=agency, metadata=metadata, valid_from=None,
                                  valid_until=valid_until, supersedes=supersedes)
        signing_key = private_key if private_key is not None else dev_key.private_key  # type: ignore[union-attr]
        first = pb.IssueDocumentMetadata(
            citizen_id=citizen_id, type_code=type_code, metadata=metadata,
            issuer_key_id=key_id or dev_key.key_id,  # type: ignore[union-attr]
            signature=sign(signing_key, manifest), idempotency_key=key or uuid.uuid4().hex,
            supersedes_document_id=supersedes)
        if valid_until is not None:
            first.valid_until.CopyFrom(stamp(valid_until))
        yield pb.IssueDocumentRequest(metadata=first)
        for start in range(0, len(content), chunk_bytes):
            yield pb.IssueDocumentRequest(chunk=content[start:start + chunk_bytes])

    def issue(self, content: bytes, citizen_id: str, *, agency: str = JUSTICE, **options: Any) -> pb.Document:
        messages = self.issue_messages(content, citizen_id, agency=agency, **options)
        return self.stub.IssueDocument(messages, metadata=self.issuer(agency), timeout=30).document

    def upload(self, content: bytes, citizen_id: str, *, title: str = "Bản chụp", type_code: str = "",
               key: str = "") -> pb.Document:
        def messages() -> Iterator[pb.UploadOwnDocumentRequest]:
            yield pb.UploadOwnDocumentRequest(metadata=pb.UploadOwnDocumentMetadata(
                type_code=type_code, title=title, idempotency_key=key or uuid.uuid4().hex))
            yield pb.UploadOwnDocumentRequest(chunk=content)

        return self.stub.UploadOwnDocument(messages(), metadata=self.citizen(citizen_id), timeout=30).document

    def share(self, citizen_id: str, document_ids: list[str], *, agency: str = RECEIVER, max_uses: int = 0,
              type_codes: list[str] | None = None, expires_at: datetime | None = None) -> pb.Share:
        request = pb.CreateShareRequest(document_ids=document_ids, type_codes=type_codes or [], agency_code=agency,
                                        dossier_code="000.00.01.H29-260301-0042", procedure_code="1.001612",
                                        purpose="Cấp lại giấy tờ", max_uses=max_uses,
                                        idempotency_key=uuid.uuid4().hex)
        if expires_at is not None:
            request.expires_at.CopyFrom(stamp(expires_at))
        return self.stub.CreateShare(request, metadata=self.citizen(citizen_id), timeout=10).share

    def redeem(self, share_id: str, *, agency: str = RECEIVER,
               delivery: int = pb.CONTENT_DELIVERY_STREAM) -> list[pb.RedeemShareResponse]:
        return list(self.stub.RedeemShare(pb.RedeemShareRequest(share_id=share_id, delivery=delivery),  # type: ignore[arg-type]
                                          metadata=self.receiver(agency), timeout=30))

    # --- what is stored ------------------------------------------------------------------------------------

    def objects(self) -> set[str]:
        return {item.object_name for item in self.s3.list_objects(self.bucket, recursive=True) if item.object_name}

    def rows(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
                    for table in TABLES}

    def stored(self) -> tuple[set[str], dict[str, int]]:
        """Objects in the bucket and rows per table: compare before and after a refused call."""
        return self.objects(), self.rows()

    def log_actions(self, citizen_id: str) -> list[str]:
        entries = self.stub.ListAccessLog(pb.ListAccessLogRequest(page_size=1000),
                                          metadata=self.citizen(citizen_id), timeout=10).entries
        return [pb.AccessAction.Name(entry.action).removeprefix("ACCESS_ACTION_") for entry in reversed(entries)]
