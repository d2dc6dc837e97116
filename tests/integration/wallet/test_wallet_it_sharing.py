"""Sharing for reuse, requests, delegation, the access log and isolation, over real gRPC and storage."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from dvc.wallet.v1 import wallet_pb2 as pb
from sqlalchemy import text
from wallet_it_support import JUSTICE, RECEIVER, new_citizen, reason_of, stamp, unique_pdf, violations_of

pytestmark = pytest.mark.integration


def _refused(call, code, reason):
    with pytest.raises(grpc.RpcError) as failure:
        call()
    assert failure.value.code() == code, failure.value.details()
    assert reason_of(failure.value) == reason
    return failure.value


def test_the_receiving_agency_redeems_a_share_and_gets_verified_content(api):
    citizen_id = new_citizen()
    content = unique_pdf("reuse")
    document = api.issue(content, citizen_id)
    share = api.share(citizen_id, [document.document_id], max_uses=1)
    assert share.status == pb.SHARE_STATUS_ACTIVE
    assert share.expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC) <= timedelta(days=30)
    messages = api.redeem(share.share_id)
    assert messages[0].share.share_id == share.share_id
    header = messages[1].document
    assert header.document.document_id == document.document_id and header.content_follows
    assert header.verification.valid and header.verification.signature_valid
    assert b"".join(message.chunk.data for message in messages[2:]) == content
    entries = api.stub.ListAccessLog(pb.ListAccessLogRequest(), metadata=api.citizen(citizen_id)).entries
    redeemed = entries[0]
    assert pb.AccessAction.Name(redeemed.action) == "ACCESS_ACTION_REDEEMED"
    assert (redeemed.agency_code, redeemed.dossier_code, redeemed.procedure_code, redeemed.document_id) == (
        RECEIVER, share.dossier_code, share.procedure_code, document.document_id)
    assert redeemed.actor_subject == f"{RECEIVER.lower()}-system"


def test_a_presigned_redemption_and_a_metadata_only_one(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    share = api.share(citizen_id, [document.document_id])
    linked = api.redeem(share.share_id, delivery=pb.CONTENT_DELIVERY_PRESIGNED_URL)[1].document
    assert linked.download_url.startswith("http") and not linked.content_follows
    assert linked.download_url_expires_at.ToSeconds() - time.time() <= 300
    bare = api.redeem(share.share_id, delivery=pb.CONTENT_DELIVERY_NONE)
    assert len(bare) == 2 and not bare[1].document.verification.content_checked
    assert bare[1].document.verification.signature_valid


def test_a_share_redeemed_by_the_wrong_agency_is_refused(api):
    citizen_id = new_citizen()
    share = api.share(citizen_id, [api.issue(unique_pdf(), citizen_id).document_id])
    _refused(lambda: api.redeem(share.share_id, agency="UBND-Q3"), grpc.StatusCode.PERMISSION_DENIED,
             "SHARE_WRONG_AGENCY")
    assert "REDEEMED" not in api.log_actions(citizen_id)


def test_a_revoked_share_is_refused(api):
    citizen_id = new_citizen()
    share = api.share(citizen_id, [api.issue(unique_pdf(), citizen_id).document_id])
    revoked = api.stub.RevokeShare(pb.RevokeShareRequest(share_id=share.share_id), metadata=api.citizen(citizen_id))
    assert revoked.share.status == pb.SHARE_STATUS_REVOKED
    _refused(lambda: api.redeem(share.share_id), grpc.StatusCode.FAILED_PRECONDITION, "SHARE_REVOKED")


def test_an_expired_share_is_refused(api):
    citizen_id = new_citizen()
    share = api.share(citizen_id, [api.issue(unique_pdf(), citizen_id).document_id],
                      expires_at=datetime.now(UTC) + timedelta(seconds=1.5))
    time.sleep(1.6)
    _refused(lambda: api.redeem(share.share_id), grpc.StatusCode.FAILED_PRECONDITION, "SHARE_EXPIRED")


def test_a_single_use_share_is_used_up_after_one_redemption(api):
    citizen_id = new_citizen()
    share = api.share(citizen_id, [api.issue(unique_pdf(), citizen_id).document_id], max_uses=1)
    api.redeem(share.share_id)
    _refused(lambda: api.redeem(share.share_id), grpc.StatusCode.FAILED_PRECONDITION, "SHARE_USED_UP")


def test_concurrent_redemptions_of_a_two_use_share_hand_it_out_exactly_twice(api):
    from concurrent.futures import ThreadPoolExecutor

    citizen_id = new_citizen()
    share = api.share(citizen_id, [api.issue(unique_pdf(), citizen_id).document_id], max_uses=2)
    # A refused redemption by another agency must not spend one of the two uses.
    _refused(lambda: api.redeem(share.share_id, agency="UBND-Q3"), grpc.StatusCode.PERMISSION_DENIED,
             "SHARE_WRONG_AGENCY")

    def attempt(_: int) -> str:
        try:
            api.redeem(share.share_id)
            return "ok"
        except grpc.RpcError as error:
            return reason_of(error)

    with ThreadPoolExecutor(6) as pool:
        outcomes = sorted(pool.map(attempt, range(6)))
    assert outcomes == ["SHARE_USED_UP"] * 4 + ["ok"] * 2
    assert api.log_actions(citizen_id).count("REDEEMED") == 2
    listed = api.stub.ListShares(pb.ListSharesRequest(include_inactive=True), metadata=api.citizen(citizen_id))
    assert [(item.use_count, item.status) for item in listed.shares] == [(2, pb.SHARE_STATUS_USED_UP)]


def test_a_share_longer_than_thirty_days_is_refused(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    _refused(lambda: api.share(citizen_id, [document.document_id],
                               expires_at=datetime.now(UTC) + timedelta(days=31)),
             grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")


def test_an_agency_request_approved_by_the_citizen_becomes_a_redeemable_share(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    request = api.stub.RequestDocuments(pb.RequestDocumentsRequest(
        citizen_id=citizen_id, type_codes=["BIRTH_CERT"], dossier_code="HS-REQ-1", procedure_code="1.001612",
        purpose="Đăng ký thường trú", idempotency_key="req-1"), metadata=api.receiver()).request
    pending = api.stub.ListDocumentRequests(pb.ListDocumentRequestsRequest(
        status=pb.DOCUMENT_REQUEST_STATUS_PENDING), metadata=api.citizen(citizen_id)).requests
    assert [item.request_id for item in pending] == [request.request_id]
    answer = api.stub.AnswerDocumentRequest(pb.AnswerDocumentRequestRequest(
        request_id=request.request_id, decision=pb.ANSWER_DECISION_APPROVE, max_uses=1),
        metadata=api.citizen(citizen_id))
    assert answer.request.status == pb.DOCUMENT_REQUEST_STATUS_APPROVED
    assert answer.share.agency_code == RECEIVER and answer.share.request_id == request.request_id
    redeemed = api.redeem(answer.share.share_id)
    assert redeemed[1].document.document.document_id == document.document_id


def test_a_declined_request_creates_no_share(api):
    citizen_id = new_citizen()
    request = api.stub.RequestDocuments(pb.RequestDocumentsRequest(
        citizen_id=citizen_id, type_codes=["JUDICIAL_RECORD"], dossier_code="HS-REQ-2", procedure_code="2.000488",
        idempotency_key="req-2"), metadata=api.receiver()).request
    answer = api.stub.AnswerDocumentRequest(pb.AnswerDocumentRequestRequest(
        request_id=request.request_id, decision=pb.ANSWER_DECISION_DECLINE), metadata=api.citizen(citizen_id))
    assert answer.request.status == pb.DOCUMENT_REQUEST_STATUS_DECLINED and not answer.HasField("share")
    assert api.stub.ListShares(pb.ListSharesRequest(include_inactive=True),
                               metadata=api.citizen(citizen_id)).shares == []


def test_a_guardian_with_an_exchanged_token_reaches_the_childs_wallet_and_is_logged(api):
    child, guardian = new_citizen(), new_citizen()
    document = api.issue(unique_pdf("child"), child)
    exchanged = api.citizen(child, act={"sub": guardian, "dvc_kind": "citizen", "relation": "guardian"})
    listed = api.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=exchanged).documents
    assert [item.document_id for item in listed] == [document.document_id]
    api.stub.GetDocument(pb.GetDocumentRequest(document_id=document.document_id), metadata=exchanged)
    entry = api.stub.ListAccessLog(pb.ListAccessLogRequest(page_size=1), metadata=api.citizen(child)).entries[0]
    assert (entry.actor_subject, entry.on_behalf_of, entry.relation) == (guardian, child, "guardian")
    # The guardian's own wallet is a different one.
    assert api.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=api.citizen(guardian)).documents == []


def test_the_access_log_chain_verifies_and_an_edit_in_the_database_is_caught(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    api.stub.GetDocument(pb.GetDocumentRequest(document_id=document.document_id), metadata=api.citizen(citizen_id))
    share = api.share(citizen_id, [document.document_id])
    api.redeem(share.share_id)
    check = api.stub.VerifyAccessLog(pb.VerifyAccessLogRequest(), metadata=api.citizen(citizen_id))
    assert check.intact and check.entries_checked == 4
    first_page = api.stub.ListAccessLog(pb.ListAccessLogRequest(page_size=3), metadata=api.citizen(citizen_id))
    rest = api.stub.ListAccessLog(pb.ListAccessLogRequest(page_size=3, page_token=first_page.next_page_token),
                                  metadata=api.citizen(citizen_id))
    assert [e.sequence for e in first_page.entries] == [4, 3, 2] and [e.sequence for e in rest.entries] == [1]
    assert rest.next_page_token == ""
    assert api.log_actions(citizen_id) == ["ISSUED", "READ", "SHARED", "REDEEMED"]
    other = api.issue(unique_pdf("other"), citizen_id)
    about_first = api.stub.ListAccessLog(pb.ListAccessLogRequest(document_id=document.document_id),
                                         metadata=api.citizen(citizen_id)).entries
    assert [entry.sequence for entry in about_first] == [4, 2, 1]
    assert other.document_id not in {entry.document_id for entry in about_first}
    with api.engine.begin() as connection:
        connection.execute(text("UPDATE wallet_access_log SET agency_code = 'NOBODY' "
                                "WHERE citizen_id = :citizen AND sequence = 3"), {"citizen": citizen_id})
    broken = api.stub.VerifyAccessLog(pb.VerifyAccessLogRequest(), metadata=api.citizen(citizen_id))
    assert not broken.intact and broken.first_broken_sequence == 3


def test_a_log_entry_deleted_from_the_database_is_caught(api):
    citizen_id = new_citizen()
    document = api.issue(unique_pdf(), citizen_id)
    api.stub.GetDocument(pb.GetDocumentRequest(document_id=document.document_id), metadata=api.citizen(citizen_id))
    with api.engine.begin() as connection:
        connection.execute(text("DELETE FROM wallet_access_log WHERE citizen_id = :citizen AND sequence = 2"),
                           {"citizen": citizen_id})
    broken = api.stub.VerifyAccessLog(pb.VerifyAccessLogRequest(), metadata=api.citizen(citizen_id))
    assert not broken.intact and broken.first_broken_sequence == 2


# --- isolation: one test per RPC that takes an id ----------------------------------------------------------------


@pytest.fixture
def someone_elses(api):
    """A document, share and request of one citizen, and a stranger's token."""
    owner = new_citizen()
    document = api.issue(unique_pdf("private"), owner)
    share = api.share(owner, [document.document_id])
    request = api.stub.RequestDocuments(pb.RequestDocumentsRequest(
        citizen_id=owner, type_codes=["BIRTH_CERT"], dossier_code="HS-ISO", procedure_code="1.0",
        idempotency_key=f"iso-{owner}"), metadata=api.receiver()).request
    return {"owner": owner, "document": document.document_id, "share": share.share_id,
            "request": request.request_id, "stranger": api.citizen(new_citizen())}


def test_isolation_get_document(api, someone_elses):
    _refused(lambda: api.stub.GetDocument(pb.GetDocumentRequest(document_id=someone_elses["document"]),
                                          metadata=someone_elses["stranger"]),
             grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")


def test_isolation_verify_document(api, someone_elses):
    _refused(lambda: api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=someone_elses["document"]),
                                             metadata=someone_elses["stranger"]),
             grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")


def test_isolation_download_document(api, someone_elses):
    _refused(lambda: list(api.stub.DownloadDocument(
        pb.DownloadDocumentRequest(document_id=someone_elses["document"]), metadata=someone_elses["stranger"])),
        grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")


def test_isolation_delete_own_document(api, someone_elses):
    _refused(lambda: api.stub.DeleteOwnDocument(pb.DeleteOwnDocumentRequest(document_id=someone_elses["document"]),
                                                metadata=someone_elses["stranger"]),
             grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")


def test_isolation_create_share_of_another_wallets_document(api, someone_elses):
    _refused(lambda: api.stub.CreateShare(pb.CreateShareRequest(
        document_ids=[someone_elses["document"]], agency_code=RECEIVER, dossier_code="HS", procedure_code="1.0",
        idempotency_key="steal"), metadata=someone_elses["stranger"]), grpc.StatusCode.NOT_FOUND,
        "DOCUMENT_NOT_FOUND")


def test_isolation_revoke_share(api, someone_elses):
    _refused(lambda: api.stub.RevokeShare(pb.RevokeShareRequest(share_id=someone_elses["share"]),
                                          metadata=someone_elses["stranger"]),
             grpc.StatusCode.NOT_FOUND, "SHARE_NOT_FOUND")


def test_isolation_answer_document_request(api, someone_elses):
    _refused(lambda: api.stub.AnswerDocumentRequest(pb.AnswerDocumentRequestRequest(
        request_id=someone_elses["request"], decision=pb.ANSWER_DECISION_APPROVE), metadata=someone_elses["stranger"]),
        grpc.StatusCode.NOT_FOUND, "REQUEST_NOT_FOUND")


def test_isolation_list_calls_show_only_the_callers_wallet(api, someone_elses):
    stranger = someone_elses["stranger"]
    assert api.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=stranger).documents == []
    assert api.stub.ListShares(pb.ListSharesRequest(include_inactive=True), metadata=stranger).shares == []
    assert api.stub.ListDocumentRequests(pb.ListDocumentRequestsRequest(), metadata=stranger).requests == []
    assert api.stub.ListAccessLog(pb.ListAccessLogRequest(), metadata=stranger).entries == []
    _refused(lambda: api.stub.ListDocuments(pb.ListDocumentsRequest(citizen_id=someone_elses["owner"]),
                                            metadata=stranger), grpc.StatusCode.PERMISSION_DENIED, "NOT_YOUR_WALLET")


def test_isolation_an_agency_reads_only_what_it_issued_or_was_shared(api, someone_elses):
    document_id = someone_elses["document"]
    assert api.stub.GetDocument(pb.GetDocumentRequest(document_id=document_id),
                                metadata=api.issuer(JUSTICE)).document.document_id == document_id
    _refused(lambda: api.stub.GetDocument(pb.GetDocumentRequest(document_id=document_id),
                                          metadata=api.issuer("CA-HCM")), grpc.StatusCode.NOT_FOUND,
             "DOCUMENT_NOT_FOUND")
    _refused(lambda: api.stub.RevokeDocument(pb.RevokeDocumentRequest(document_id=document_id, reason="x"),
                                             metadata=api.issuer("CA-HCM")), grpc.StatusCode.NOT_FOUND,
             "DOCUMENT_NOT_FOUND")
    # The receiving agency sees it only once it redeemed the share granted to it.
    _refused(lambda: api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document_id),
                                             metadata=api.receiver()), grpc.StatusCode.NOT_FOUND,
             "DOCUMENT_NOT_FOUND")
    api.redeem(someone_elses["share"])
    verified = api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document_id), metadata=api.receiver())
    assert verified.verification.valid
    assert [share.share_id for share in api.stub.ListShares(pb.ListSharesRequest(), metadata=api.receiver(
        "UBND-Q3")).shares] == []


def test_isolation_an_expired_share_no_longer_opens_what_it_handed_over(api):
    citizen_id = new_citizen()
    document_id = api.issue(unique_pdf("expiring"), citizen_id).document_id
    share = api.share(citizen_id, [document_id], expires_at=datetime.now(UTC) + timedelta(seconds=2))
    api.redeem(share.share_id)
    read = lambda: api.stub.GetDocument(pb.GetDocumentRequest(document_id=document_id),  # noqa: E731
                                        metadata=api.receiver())
    verify = lambda: api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document_id),  # noqa: E731
                                             metadata=api.receiver())
    assert read().document.document_id == document_id and verify().verification.valid
    time.sleep(max(0.0, (share.expires_at.ToDatetime(tzinfo=UTC) - datetime.now(UTC)).total_seconds()) + 0.1)
    _refused(read, grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")
    _refused(verify, grpc.StatusCode.NOT_FOUND, "DOCUMENT_NOT_FOUND")


def test_isolation_a_citizen_token_cannot_issue_or_redeem(api, someone_elses):
    owner = api.citizen(someone_elses["owner"])
    _refused(lambda: list(api.stub.RedeemShare(pb.RedeemShareRequest(share_id=someone_elses["share"]),
                                               metadata=owner)), grpc.StatusCode.PERMISSION_DENIED,
             "MISSING_SCOPE")
    _refused(lambda: api.stub.RevokeDocument(pb.RevokeDocumentRequest(document_id=someone_elses["document"],
                                                                      reason="x"), metadata=owner),
             grpc.StatusCode.PERMISSION_DENIED, "MISSING_SCOPE")


def test_calls_without_a_token_are_refused(api):
    _refused(lambda: api.stub.ListDocuments(pb.ListDocumentsRequest()), grpc.StatusCode.UNAUTHENTICATED,
             "MISSING_TOKEN")


def test_a_citizen_id_with_a_trailing_newline_is_an_invalid_argument(api):
    request = pb.RequestDocumentsRequest(citizen_id=new_citizen() + "\n", type_codes=["BIRTH_CERT"],
                                         dossier_code="HS-NL", procedure_code="1.0", idempotency_key="nl")
    refused = _refused(lambda: api.stub.RequestDocuments(request, metadata=api.receiver()),
                       grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT")
    assert violations_of(refused) == {"citizen_id"}


def test_expires_at_is_honoured_to_the_second(api):
    citizen_id = new_citizen()
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    request = pb.CreateShareRequest(document_ids=[api.issue(unique_pdf(), citizen_id).document_id],
                                    agency_code=RECEIVER, dossier_code="HS-T", procedure_code="1.0",
                                    idempotency_key="t", expires_at=stamp(expires))
    share = api.stub.CreateShare(request, metadata=api.citizen(citizen_id)).share
    assert share.expires_at.ToDatetime(tzinfo=UTC) == expires
