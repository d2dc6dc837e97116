"""Issuing and uploading through the handlers on fakes: what is stored, and that a refusal stores nothing."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest
from wallet_fakes import (
    CITIZEN,
    JUSTICE,
    PDF,
    POLICE,
    agency,
    citizen,
    issue_command,
)

from servicekit.errors import Conflict, FailedPrecondition, InvalidArgument, PermissionDenied
from wallet_service.bootstrap import dev_issuer_keys
from wallet_service.domain.manifest import SignatureChecks, load_public_key, sign
from wallet_service.domain.model import (
    AccessAction,
    DocumentStatus,
    StoredStatus,
    TrustLevel,
    VerificationStatus,
)
from wallet_service.service_layer.handlers import UploadCommand

ISSUER = agency(JUSTICE, "wallet.issue")


def _nothing_stored(wallet):
    return not wallet.storage.objects and not wallet.database.documents and not wallet.database.blobs \
        and not wallet.database.log


def test_an_issued_document_is_stored_under_its_content_hash(wallet):
    document, replayed = wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF[:10], PDF[10:]])
    digest = hashlib.sha256(PDF).hexdigest()
    assert not replayed
    assert document.content_sha256 == digest and document.content_type == "application/pdf"
    assert document.trust_level is TrustLevel.ISSUED and document.issuer_agency == JUSTICE
    assert wallet.storage.objects == {f"sha256/{digest}": PDF}
    assert wallet.database.documents[document.document_id].citizen_id == CITIZEN
    [entry] = wallet.database.log[CITIZEN]
    assert (entry.action, entry.document_id, entry.agency_code) == (AccessAction.ISSUED, document.document_id,
                                                                     JUSTICE)


def test_the_same_bytes_issued_twice_are_stored_once(wallet):
    first, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="a"), [PDF])
    second, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="b",
                                                                     citizen_id="079188000111"), [PDF])
    assert first.document_id != second.document_id
    assert len(wallet.storage.objects) == 1 and wallet.storage.puts == 1


def test_a_retry_with_the_same_key_returns_the_same_document(wallet):
    first, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    again, replayed = wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    assert replayed and again.document_id == first.document_id and len(wallet.database.documents) == 1


def test_reusing_a_key_for_other_content_is_a_conflict(wallet):
    wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    other = PDF + b"%%EOF"
    with pytest.raises(Conflict) as refused:
        wallet.handlers.issue_document(ISSUER, issue_command(other), [other])
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert len(wallet.storage.objects) == 1


@pytest.mark.parametrize(("chunks", "reason"), [
    ([], "CONTENT_EMPTY"),
    ([b"PK\x03\x04 zip archive renamed to .pdf"], "CONTENT_TYPE_NOT_ALLOWED"),
])
def test_empty_or_mistyped_content_is_refused_and_nothing_is_stored(wallet, chunks, reason):
    content = b"".join(chunks)
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, issue_command(content), chunks)
    assert refused.value.reason == reason
    assert _nothing_stored(wallet)


def test_oversized_content_is_refused_and_nothing_is_stored(wallet, monkeypatch):
    small_limit = type(wallet.handlers)(wallet.handlers._uow, wallet.storage, clock=wallet.clock,
                                        max_content_bytes=1024)
    content = b"%PDF-" + b"x" * 2000
    with pytest.raises(InvalidArgument) as refused:
        small_limit.issue_document(ISSUER, issue_command(content), [content[:1000], content[1000:]])
    assert refused.value.reason == "CONTENT_TOO_LARGE"
    assert _nothing_stored(wallet)


def test_the_real_limit_is_twenty_megabytes(wallet):
    content = b"%PDF-" + bytes(20 * 1024 * 1024 - 4)
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, issue_command(content), [content[i:i + 4 << 20]
                                                                        for i in range(0, len(content), 4 << 20)])
    assert refused.value.reason == "CONTENT_TOO_LARGE"
    assert _nothing_stored(wallet)


def test_an_unknown_type_is_refused_before_any_content_is_read(wallet):
    pulled = []

    def chunks():
        pulled.append(1)
        yield PDF

    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, issue_command(PDF, type_code="PASSPORT"), chunks())
    assert refused.value.reason == "UNKNOWN_DOCUMENT_TYPE"
    assert pulled == [] and _nothing_stored(wallet)


def test_metadata_not_matching_the_schema_is_refused(wallet):
    command = issue_command(PDF, metadata={"full_name": "Nguyễn Văn An", "date_of_birth": "30/04/2015"})
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, command, [PDF])
    fields = {violation.field for violation in refused.value.violations}
    assert "metadata.metadata.date_of_birth" in fields and "metadata.metadata.sex" in fields
    assert _nothing_stored(wallet)


def test_a_signature_over_other_content_is_refused(wallet):
    command = issue_command(PDF, signed_content=PDF + b"original")
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, command, [PDF])
    assert refused.value.reason == "BAD_ISSUER_SIGNATURE"
    assert _nothing_stored(wallet)


def test_a_signature_over_other_metadata_is_refused(wallet):
    command = issue_command(PDF)
    tampered = replace(command, metadata={**command.metadata, "full_name": "Trần Văn Bình"})
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, tampered, [PDF])
    assert refused.value.reason == "BAD_ISSUER_SIGNATURE"
    assert _nothing_stored(wallet)


def test_an_oversized_signature_is_refused_before_any_work(wallet):
    command = replace(issue_command(PDF), signature=b"\x01" * 4_000_000)
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, command, [PDF])
    assert [violation.field for violation in refused.value.violations] == ["metadata.signature"]
    assert _nothing_stored(wallet)


def test_failed_signature_checks_leave_nothing_behind_and_passed_ones_only_a_digest():
    key = dev_issuer_keys()[JUSTICE]
    public_key = load_public_key(key.public_key_pem, key.algorithm)
    checks = SignatureChecks()
    manifest = b"manifest " * 10_000
    for attempt in range(50):   # forged signatures, as an agency with a registered key could send them
        assert not checks.verifies(key.key_id, public_key, manifest, bytes([attempt]) * 64)
    assert checks.verifies(key.key_id, public_key, manifest, sign(key.private_key, manifest))
    assert len(checks) == 1   # the 50 failures were not remembered


def test_a_declared_hash_that_does_not_match_is_named(wallet):
    command = replace(issue_command(PDF), content_sha256="0" * 64)
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, command, [PDF])
    assert refused.value.reason == "CONTENT_HASH_MISMATCH"


def test_a_citizen_id_with_a_trailing_newline_is_refused(wallet):
    command = issue_command(PDF, citizen_id=CITIZEN + "\n")
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, command, [PDF])
    assert [v.field for v in refused.value.violations] == ["metadata.citizen_id"]
    assert _nothing_stored(wallet)


def test_issuer_key_names_with_a_trailing_newline_are_refused(wallet):
    key = dev_issuer_keys()[JUSTICE]
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.store_issuer_key(key_id="stp-hcm-2027\n", agency_code=JUSTICE + "\n",
                                         agency_kind=key.agency_kind + "\n", algorithm=key.algorithm,
                                         public_key_pem=key.public_key_pem)
    assert [v.field for v in refused.value.violations] == ["key_id", "agency_code", "agency_kind"]


def test_issuing_needs_the_issue_scope_and_the_agencys_own_key(wallet):
    with pytest.raises(PermissionDenied) as refused:
        wallet.handlers.issue_document(agency(JUSTICE, "wallet.redeem"), issue_command(PDF), [PDF])
    assert refused.value.reason == "MISSING_SCOPE"
    with pytest.raises(PermissionDenied) as refused:
        wallet.handlers.issue_document(agency(POLICE, "wallet.issue"), issue_command(PDF), [PDF])
    assert refused.value.reason == "ISSUER_KEY_NOT_OWNED"
    with pytest.raises(PermissionDenied):
        wallet.handlers.issue_document(citizen(), issue_command(PDF), [PDF])
    assert _nothing_stored(wallet)


def test_an_agency_may_issue_only_the_types_of_its_kind(wallet):
    # The police may issue residence confirmations but not birth certificates.
    command = issue_command(PDF, agency_code=POLICE)
    with pytest.raises(PermissionDenied) as refused:
        wallet.handlers.issue_document(agency(POLICE, "wallet.issue"), command, [PDF])
    assert refused.value.reason == "AGENCY_KIND_NOT_ALLOWED"


def test_validity_rules_of_the_type_are_enforced(wallet):
    metadata = {"full_name": "A", "date_of_birth": "1990-01-01", "certificate_number": "LLTP-1", "form_number": "1",
                "has_criminal_record": "false", "issued_on": "2026-03-01"}
    without_end = issue_command(PDF, type_code="JUDICIAL_RECORD", metadata=metadata)
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.issue_document(ISSUER, without_end, [PDF])
    assert [v.field for v in refused.value.violations] == ["metadata.valid_until"]
    too_long = issue_command(PDF, type_code="JUDICIAL_RECORD", metadata=metadata,
                             valid_until=wallet.clock.now.replace(microsecond=0) + timedelta(days=181))
    with pytest.raises(InvalidArgument):
        wallet.handlers.issue_document(ISSUER, too_long, [PDF])
    fine = issue_command(PDF, type_code="JUDICIAL_RECORD", metadata=metadata,
                         valid_until=wallet.clock.now.replace(microsecond=0) + timedelta(days=180))
    document, _ = wallet.handlers.issue_document(ISSUER, fine, [PDF])
    assert document.status_at(wallet.clock.now) is DocumentStatus.VALID


def test_a_failed_object_put_leaves_no_row(wallet):
    wallet.storage.fail_next_put = OSError("connection reset by S3")
    with pytest.raises(OSError):
        wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    assert _nothing_stored(wallet)


def test_a_failed_commit_removes_the_object_it_put(wallet):
    wallet.database.fail_next_commit = RuntimeError("database went away")
    with pytest.raises(RuntimeError):
        wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    assert _nothing_stored(wallet)


def test_a_failed_commit_keeps_an_object_other_documents_hold(wallet):
    wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="first"), [PDF])
    wallet.database.fail_next_commit = RuntimeError("database went away")
    with pytest.raises(RuntimeError):
        wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="second"), [PDF])
    assert len(wallet.storage.objects) == 1 and len(wallet.database.documents) == 1


def test_known_bytes_whose_object_went_missing_are_put_again(wallet):
    first, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="first"), [PDF])
    wallet.storage.objects.clear()  # lost while its blob row stayed (as a failed deletion once left it)
    wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="second"), [PDF])
    assert wallet.storage.objects == {f"sha256/{first.content_sha256}": PDF}
    _, verification = wallet.handlers.verify(citizen(), first.document_id)
    assert verification.verification_status is VerificationStatus.VERIFIED


def test_a_stream_broken_mid_way_stores_nothing(wallet):
    def chunks():
        yield PDF[:10]
        raise ConnectionResetError("client cancelled")

    with pytest.raises(ConnectionResetError):
        wallet.handlers.issue_document(ISSUER, issue_command(PDF), chunks())
    assert _nothing_stored(wallet)


def test_issuing_with_supersedes_links_both_versions(wallet):
    old, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="v1"), [PDF])
    corrected = PDF + b"% corrected"
    new, _ = wallet.handlers.issue_document(ISSUER, issue_command(corrected, idempotency_key="v2",
                                                                  supersedes=old.document_id), [corrected])
    stored_old = wallet.database.documents[old.document_id]
    assert stored_old.stored_status is StoredStatus.SUPERSEDED
    assert stored_old.superseded_by_document_id == new.document_id
    assert new.supersedes_document_id == old.document_id
    actions = [entry.action for entry in wallet.database.log[CITIZEN]]
    assert actions == [AccessAction.ISSUED, AccessAction.ISSUED, AccessAction.SUPERSEDED]


def test_only_the_issuer_may_supersede(wallet):
    old, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF, idempotency_key="v1"), [PDF])
    other = agency("UBND-PHUONG-BEN-NGHE", "wallet.issue")
    command = issue_command(PDF + b"x", agency_code="UBND-PHUONG-BEN-NGHE", idempotency_key="v2",
                            supersedes=old.document_id)
    with pytest.raises(Exception) as refused:
        wallet.handlers.issue_document(other, command, [PDF + b"x"])
    assert getattr(refused.value, "reason", "") == "DOCUMENT_NOT_FOUND"
    assert len(wallet.database.documents) == 1 and len(wallet.storage.objects) == 1


def test_a_citizen_upload_is_marked_self_uploaded(wallet):
    scan = b"\xff\xd8\xff\xe0 jpeg scan of my birth certificate"
    document, _ = wallet.handlers.upload_own_document(
        citizen(), UploadCommand(type_code="BIRTH_CERT", title="Khai sinh (bản chụp)",
                                 metadata={"full_name": "Nguyễn Văn An"}, idempotency_key="u1"), [scan])
    assert document.trust_level is TrustLevel.SELF_UPLOADED and document.issuer_agency == ""
    assert document.content_type == "image/jpeg" and document.citizen_id == CITIZEN
    assert wallet.database.log[CITIZEN][0].action is AccessAction.UPLOADED


def test_an_upload_retried_with_other_metadata_is_a_reused_key_not_the_first_document(wallet):
    scan = b"\xff\xd8\xff\xe0 jpeg scan"
    first = UploadCommand("BIRTH_CERT", "Khai sinh", {"full_name": "A"}, "u1")
    wallet.handlers.upload_own_document(citizen(), first, [scan])
    _, replayed = wallet.handlers.upload_own_document(citizen(), first, [scan])
    assert replayed
    with pytest.raises(Conflict) as refused:
        wallet.handlers.upload_own_document(citizen(), replace(first, metadata={"full_name": "B"}), [scan])
    assert refused.value.reason == "IDEMPOTENCY_KEY_REUSED"


def test_a_citizen_upload_is_checked_like_any_content(wallet):
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.upload_own_document(citizen(), UploadCommand("", "notes", {}, "u1"), [b"hello"])
    assert refused.value.reason == "CONTENT_TYPE_NOT_ALLOWED"
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.upload_own_document(citizen(), UploadCommand("VISA", "", {}, "u2"), [PDF])
    assert refused.value.reason == "UNKNOWN_DOCUMENT_TYPE"
    with pytest.raises(PermissionDenied):
        wallet.handlers.upload_own_document(ISSUER, UploadCommand("", "", {}, "u3"), [PDF])
    assert _nothing_stored(wallet)


def test_deleting_an_upload_removes_its_object(wallet):
    document, _ = wallet.handlers.upload_own_document(citizen(), UploadCommand("", "scan", {}, "u1"), [PDF])
    assert wallet.handlers.delete_own_document(citizen(), document.document_id) is True
    assert not wallet.storage.objects and not wallet.database.documents and not wallet.database.blobs
    assert wallet.database.log[CITIZEN][-1].action is AccessAction.DELETED


def test_a_deletion_that_fails_to_commit_keeps_the_content(wallet):
    document, _ = wallet.handlers.upload_own_document(citizen(), UploadCommand("", "scan", {}, "u1"), [PDF])
    wallet.database.fail_next_commit = RuntimeError("database went away")
    with pytest.raises(RuntimeError):
        wallet.handlers.delete_own_document(citizen(), document.document_id)
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.verification_status is VerificationStatus.UNSIGNED_INTACT
    # The retried deletion still removes the object.
    assert wallet.handlers.delete_own_document(citizen(), document.document_id) is True
    assert not wallet.storage.objects and not wallet.database.blobs


def test_a_deletion_is_done_even_when_its_object_cannot_be_removed_and_the_sweep_takes_it(wallet, monkeypatch):
    document, _ = wallet.handlers.upload_own_document(citizen(), UploadCommand("", "scan", {}, "u1"), [PDF])
    key = f"sha256/{document.content_sha256}"

    def unreachable(_: str) -> None:
        raise OSError("S3 unreachable")

    monkeypatch.setattr(wallet.storage, "delete", unreachable)
    assert wallet.handlers.delete_own_document(citizen(), document.document_id) is True
    assert not wallet.database.documents and not wallet.database.blobs and key in wallet.storage.objects
    monkeypatch.undo()
    wallet.clock.now = wallet.storage.modified[key] + timedelta(hours=1)
    assert wallet.handlers.sweep_orphans(timedelta(minutes=15)) == 1 and not wallet.storage.objects


def test_deleting_an_upload_keeps_bytes_another_document_holds(wallet):
    wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    upload, _ = wallet.handlers.upload_own_document(citizen(), UploadCommand("", "same file", {}, "u1"), [PDF])
    assert wallet.handlers.delete_own_document(citizen(), upload.document_id) is False
    assert len(wallet.storage.objects) == 1 and len(wallet.database.documents) == 1


def test_issued_documents_cannot_be_deleted_by_the_citizen(wallet):
    document, _ = wallet.handlers.issue_document(ISSUER, issue_command(PDF), [PDF])
    with pytest.raises(FailedPrecondition) as refused:
        wallet.handlers.delete_own_document(citizen(), document.document_id)
    assert refused.value.reason == "ISSUED_DOCUMENT_RETAINED"
    assert wallet.storage.objects
