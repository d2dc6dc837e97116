"""Catalogue and issuer-key administration, revocation, supersession, expiry, deletion, and `make run`'s SQLite."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from dvc.wallet.v1 import wallet_pb2 as pb
from dvc.wallet.v1 import wallet_pb2_grpc
from wallet_it_support import JUSTICE, RECEIVER, new_citizen, reason_of, unique_pdf

from servicekit.config import PlatformSettings
from servicekit.process import start
from servicekit.s3 import drop_bucket
from servicekit.settings import StartupError
from servicekit.testing import LocalTokenIssuer, bearer
from wallet_service.bootstrap import SPEC, WalletSettings
from wallet_service.domain.manifest import public_pem

pytestmark = pytest.mark.integration


def test_the_catalogue_is_public_and_seeded(api):
    types = api.stub.ListDocumentTypes(pb.ListDocumentTypesRequest(page_size=500)).document_types
    codes = {item.code for item in types}
    assert {"BIRTH_CERT", "JUDICIAL_RECORD", "DRIVING_LICENCE", "LAND_USE_RIGHT", "BUSINESS_REGISTRATION",
            "RESIDENCE_CONFIRMATION", "FEE_RECEIPT"} <= codes
    receipt = next(item for item in types if item.code == "FEE_RECEIPT")
    assert {field.name for field in receipt.metadata_fields if field.required} == {
        "receipt_number", "payment_reference", "amount_vnd", "paid_at"}


def test_pages_of_the_catalogue_chain_through_tokens(api):
    first = api.stub.ListDocumentTypes(pb.ListDocumentTypesRequest(page_size=3))
    second = api.stub.ListDocumentTypes(pb.ListDocumentTypesRequest(page_size=3, page_token=first.next_page_token))
    assert len(first.document_types) == 3 and first.next_page_token
    assert not {t.code for t in first.document_types} & {t.code for t in second.document_types}
    with pytest.raises(grpc.RpcError) as refused:
        api.stub.ListDocumentTypes(pb.ListDocumentTypesRequest(page_token="not-ours"))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_an_admin_adds_a_type_that_agencies_can_then_issue(api):
    code = f"MARRIAGE_{uuid.uuid4().hex[:6].upper()}"
    new_type = pb.DocumentType(code=code, name="Giấy chứng nhận kết hôn", issuing_agency_kinds=["JUSTICE_DEPARTMENT"],
                               metadata_fields=[pb.MetadataField(name="spouses", type=pb.METADATA_FIELD_TYPE_STRING,
                                                                 required=True, description="Both names")])
    with pytest.raises(grpc.RpcError) as refused:
        api.stub.AddDocumentType(pb.AddDocumentTypeRequest(document_type=new_type), metadata=api.issuer())
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    added = api.stub.AddDocumentType(pb.AddDocumentTypeRequest(document_type=new_type), metadata=api.admin())
    assert added.document_type.code == code
    document = api.issue(unique_pdf(), new_citizen(), type_code=code, metadata={"spouses": "An & Bình"})
    assert document.type_code == code
    clash = pb.DocumentType(code=code, name="Other", issuing_agency_kinds=["POLICE"])
    with pytest.raises(grpc.RpcError) as refused:
        api.stub.AddDocumentType(pb.AddDocumentTypeRequest(document_type=clash), metadata=api.admin())
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_a_registered_es256_key_lets_a_new_agency_issue(api):
    agency = f"CA-{uuid.uuid4().hex[:6].upper()}"
    private_key = ec.generate_private_key(ec.SECP256R1())
    key_id = f"{agency.lower()}-2026"
    registered = api.stub.RegisterIssuerKey(pb.RegisterIssuerKeyRequest(
        key_id=key_id, agency_code=agency, agency_kind="POLICE", algorithm=pb.SIGNATURE_ALGORITHM_ES256,
        public_key_pem=public_pem(private_key)), metadata=api.admin())
    assert registered.issuer_key.agency_code == agency
    metadata = {"full_name": "Phạm Văn Cường", "date_of_birth": "1985-12-01", "permanent_address": "12 Lê Lợi, Q1",
                "confirmation_number": "XNCT-99", "issued_on": "2026-03-01"}
    until = datetime.now(UTC).replace(microsecond=0) + timedelta(days=200)
    document = api.issue(unique_pdf(), new_citizen(), agency=agency, type_code="RESIDENCE_CONFIRMATION",
                         metadata=metadata, valid_until=until, private_key=private_key, key_id=key_id)
    assert document.issuer_key_id == key_id and document.valid_until.ToDatetime(tzinfo=UTC) == until
    with pytest.raises(grpc.RpcError) as refused:
        api.stub.RegisterIssuerKey(pb.RegisterIssuerKeyRequest(
            key_id=key_id, agency_code=agency, agency_kind="POLICE", algorithm=pb.SIGNATURE_ALGORITHM_ES256,
            public_key_pem=public_pem(ec.generate_private_key(ec.SECP256R1()))), metadata=api.admin())
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS


def test_revoked_documents_show_their_status_to_the_owner_and_verifiers(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    revoked = api.stub.RevokeDocument(pb.RevokeDocumentRequest(document_id=document.document_id,
                                                               reason="Cấp nhầm người"), metadata=api.issuer())
    assert revoked.document.status == pb.DOCUMENT_STATUS_REVOKED
    check = api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document.document_id),
                                    metadata=api.citizen(citizen_id))
    assert check.verification.document_status == pb.DOCUMENT_STATUS_REVOKED and not check.verification.valid
    assert check.document.revocation_reason == "Cấp nhầm người"
    assert "DOCUMENT_REVOKED" in api.log_actions(citizen_id)


def test_a_new_version_supersedes_the_old_one(api):
    citizen_id = new_citizen()
    old = api.issue(unique_pdf("v1"), citizen_id)
    new = api.issue(unique_pdf("v2"), citizen_id, supersedes=old.document_id)
    assert new.supersedes_document_id == old.document_id
    seen = api.stub.GetDocument(pb.GetDocumentRequest(document_id=old.document_id), metadata=api.citizen(citizen_id))
    assert seen.document.status == pb.DOCUMENT_STATUS_SUPERSEDED
    assert seen.document.superseded_by_document_id == new.document_id
    third = api.issue(unique_pdf("v3"), citizen_id)
    linked = api.stub.SupersedeDocument(pb.SupersedeDocumentRequest(
        document_id=new.document_id, replacement_document_id=third.document_id, reason="đính chính"),
        metadata=api.issuer())
    assert linked.document.status == pb.DOCUMENT_STATUS_SUPERSEDED
    active = api.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=api.citizen(citizen_id)).documents
    assert [item.document_id for item in active] == [third.document_id]


def test_a_document_past_valid_until_is_shown_expired(api):
    citizen_id = new_citizen()
    metadata = {"full_name": "Võ Thị Hạnh", "date_of_birth": "1990-05-05", "certificate_number": "LLTP-7",
                "form_number": "1", "has_criminal_record": "false", "issued_on": "2025-01-02"}
    until = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    document = api.issue(unique_pdf(), citizen_id, type_code="JUDICIAL_RECORD", metadata=metadata,
                         valid_until=until)
    assert document.status == pb.DOCUMENT_STATUS_EXPIRED
    listed = api.stub.ListDocuments(pb.ListDocumentsRequest(include_inactive=True),
                                    metadata=api.citizen(citizen_id)).documents
    assert [item.status for item in listed] == [pb.DOCUMENT_STATUS_EXPIRED]


def test_a_citizen_upload_is_visibly_self_uploaded_and_deleting_it_removes_the_object(api):
    citizen_id = new_citizen()
    scan = b"\x89PNG\r\n\x1a\n" + uuid.uuid4().bytes * 100
    document = api.upload(scan, citizen_id, title="Ảnh chụp CCCD")
    assert document.trust_level == pb.TRUST_LEVEL_SELF_UPLOADED and document.content_type == "image/png"
    key = f"sha256/{hashlib.sha256(scan).hexdigest()}"
    assert key in api.objects()
    share = api.share(citizen_id, [document.document_id])
    header = api.redeem(share.share_id)[1].document
    assert header.document.trust_level == pb.TRUST_LEVEL_SELF_UPLOADED
    assert header.verification.verification_status == pb.VERIFICATION_STATUS_UNSIGNED_INTACT
    assert not header.verification.valid
    removed = api.stub.DeleteOwnDocument(pb.DeleteOwnDocumentRequest(document_id=document.document_id),
                                         metadata=api.citizen(citizen_id))
    assert removed.content_removed and key not in api.objects()
    assert "DELETED" in api.log_actions(citizen_id)


def test_an_issued_document_cannot_be_deleted_by_its_owner(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    with pytest.raises(grpc.RpcError) as refused:
        api.stub.DeleteOwnDocument(pb.DeleteOwnDocumentRequest(document_id=document.document_id),
                                   metadata=api.citizen(citizen_id))
    assert reason_of(refused.value) == "ISSUED_DOCUMENT_RETAINED"


def test_probes_answer_on_the_http_edge(api):
    with urllib.request.urlopen(f"{api.http_url}/readyz", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ready"
    with urllib.request.urlopen(f"{api.http_url}/healthz", timeout=5) as response:
        assert response.status == 200


def test_only_a_process_serving_the_pages_needs_the_web_session_keys(api, wallet_settings):
    # Production with no session keys: the gRPC and worker processes start (they never touch a web session),
    # the HTTP edge, which mounts the citizen's pages, refuses and names the setting.
    production = dataclasses.replace(wallet_settings, environment="production", grpc_port=0,
                                     web_grpc_target="127.0.0.1:7053", auto_migrate=False)
    tokens = LocalTokenIssuer()
    running = start(SPEC, production, PlatformSettings(), verifier=tokens.verifier("dvc-wallet"), http=False,
                    workers=False)
    try:
        assert running.grpc is not None and running.http is None
    finally:
        running.stop(0.5)
    with pytest.raises(StartupError) as refused:
        start(SPEC, production, PlatformSettings(), verifier=tokens.verifier("dvc-wallet"), grpc_server=False,
              workers=False)
    assert "WALLET_WEB_SESSION_KEYS" in str(refused.value)


def test_the_service_runs_its_migrations_on_sqlite_as_make_run_does(api, tmp_path, s3_settings):
    tokens = LocalTokenIssuer()
    bucket = f"wallet-sqlite-{uuid.uuid4().hex[:10]}"
    settings = WalletSettings(database_url=f"sqlite:///{tmp_path / 'wallet.sqlite3'}",
                              s3_endpoint=s3_settings["endpoint"], s3_access_key=s3_settings["access_key"],
                              s3_secret_key=s3_settings["secret_key"], s3_bucket=bucket, metrics_port=-1)
    running = start(SPEC, settings, PlatformSettings(), verifier=tokens.verifier("dvc-wallet"), workers=False)
    assert running.grpc is not None
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc.port}") as channel:
            stub = wallet_pb2_grpc.WalletServiceStub(channel)
            citizen_id = new_citizen()

            def messages():
                yield pb.UploadOwnDocumentRequest(metadata=pb.UploadOwnDocumentMetadata(title="scan",
                                                                                        idempotency_key="1"))
                yield pb.UploadOwnDocumentRequest(chunk=unique_pdf("sqlite"))

            token = bearer(tokens.mint(citizen_id, audience="dvc-wallet"))
            document = stub.UploadOwnDocument(messages(), metadata=token).document
            check = stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document.document_id), metadata=token)
            assert check.verification.verification_status == pb.VERIFICATION_STATUS_UNSIGNED_INTACT
            # The dev issuers' keys were seeded at start-up, so a sandbox agency can issue right away.
            issuer = bearer(tokens.mint("stp-hcm-system", audience="dvc-wallet", kind="client",
                                        scopes=("wallet.issue",), agency=JUSTICE))
            issued = stub.IssueDocument(api.issue_messages(unique_pdf("sqlite-issued"), citizen_id),
                                        metadata=issuer).document
            listed = stub.ListDocuments(pb.ListDocumentsRequest(), metadata=token).documents
            assert {item.document_id for item in listed} == {document.document_id, issued.document_id}
            # Redeeming counts the use with UPDATE ... RETURNING, which SQLite must run too.
            share = stub.CreateShare(pb.CreateShareRequest(
                document_ids=[issued.document_id], agency_code=RECEIVER, dossier_code="HS-SQLITE",
                procedure_code="1.000001", max_uses=1, idempotency_key="share-1"), metadata=token).share
            receiver = bearer(tokens.mint("ubnd-q1-system", audience="dvc-wallet", kind="client",
                                          scopes=("wallet.redeem",), agency=RECEIVER))
            redeemed = list(stub.RedeemShare(pb.RedeemShareRequest(share_id=share.share_id), metadata=receiver))
            assert redeemed[0].share.use_count == 1 and redeemed[1].document.verification.valid
            with pytest.raises(grpc.RpcError) as used_up:
                list(stub.RedeemShare(pb.RedeemShareRequest(share_id=share.share_id), metadata=receiver))
            assert reason_of(used_up.value) == "SHARE_USED_UP"
            entries = stub.ListAccessLog(pb.ListAccessLogRequest(), metadata=token).entries
            assert [pb.AccessAction.Name(entry.action).removeprefix("ACCESS_ACTION_") for entry in entries] == [
                "REDEEMED", "SHARED", "ISSUED", "VERIFIED", "UPLOADED"]  # the refused redemption left none
            assert stub.VerifyAccessLog(pb.VerifyAccessLogRequest(), metadata=token).intact
    finally:
        running.stop(1.0)
        drop_bucket(api.s3, bucket)
