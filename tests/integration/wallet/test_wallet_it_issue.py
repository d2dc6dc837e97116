"""Issuing over real gRPC into real PostgreSQL and SeaweedFS: stored once, refused cleanly, tampering caught."""

from __future__ import annotations

import hashlib
import io
import threading
import time
import urllib.parse
import urllib.request

import grpc
import pytest
from dvc.wallet.v1 import wallet_pb2 as pb
from wallet_it_support import PDF, new_citizen, reason_of, unique_pdf, violations_of

pytestmark = pytest.mark.integration
RACE_ROUNDS = 4


def test_an_issued_document_lands_in_the_bucket_under_its_hash_and_verifies(api):
    citizen_id = new_citizen()
    content = unique_pdf("issued")
    document = api.issue(content, citizen_id, chunk_bytes=17)
    digest = hashlib.sha256(content).hexdigest()
    assert document.content_sha256 == digest and document.content_type == "application/pdf"
    assert document.trust_level == pb.TRUST_LEVEL_ISSUED and document.status == pb.DOCUMENT_STATUS_VALID
    stored = api.s3.get_object(api.bucket, f"sha256/{digest}")
    try:
        assert stored.read() == content
    finally:
        stored.close()
        stored.release_conn()
    answer = api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document.document_id),
                                     metadata=api.citizen(citizen_id))
    assert answer.verification.verification_status == pb.VERIFICATION_STATUS_VERIFIED
    assert answer.verification.valid and answer.verification.actual_sha256 == digest
    assert api.log_actions(citizen_id) == ["ISSUED", "VERIFIED"]


def test_the_same_bytes_issued_to_two_citizens_are_one_object(api):
    content = unique_pdf("twice")
    before = api.objects()
    first = api.issue(content, new_citizen())
    second = api.issue(content, new_citizen())
    assert first.document_id != second.document_id
    assert api.objects() - before == {f"sha256/{hashlib.sha256(content).hexdigest()}"}


def test_a_retried_issue_returns_the_first_document(api):
    citizen_id = new_citizen()
    content = unique_pdf("retry")
    first = api.stub.IssueDocument(api.issue_messages(content, citizen_id, key="retry-1"), metadata=api.issuer())
    again = api.stub.IssueDocument(api.issue_messages(content, citizen_id, key="retry-1"), metadata=api.issuer())
    assert again.replayed and again.document.document_id == first.document.document_id


def _refused(api, messages, metadata=None):
    before = api.stored()
    with pytest.raises(grpc.RpcError) as failure:
        api.stub.IssueDocument(messages, metadata=metadata or api.issuer(), timeout=60)
    assert api.stored() == before, "a refused issue must leave no object and no row behind"
    return failure.value


def test_empty_content_is_refused_and_nothing_is_stored(api):
    error = _refused(api, api.issue_messages(b"", new_citizen()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(error) == "CONTENT_EMPTY"


def test_oversized_content_is_refused_and_nothing_is_stored(api):
    content = b"%PDF-" + bytes(20 * 1024 * 1024 - 4)
    error = _refused(api, api.issue_messages(content, new_citizen(), chunk_bytes=4 * 1024 * 1024))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and reason_of(error) == "CONTENT_TOO_LARGE"


def test_mistyped_content_is_refused_whatever_the_metadata_says(api):
    zip_bytes = b"PK\x03\x04\x14\x00\x00\x00\x08\x00 this is a zip archive"
    error = _refused(api, api.issue_messages(zip_bytes, new_citizen()))
    assert reason_of(error) == "CONTENT_TYPE_NOT_ALLOWED"


def test_an_unknown_document_type_is_refused(api):
    error = _refused(api, api.issue_messages(unique_pdf(), new_citizen(), type_code="SPACE_LICENCE"))
    assert reason_of(error) == "UNKNOWN_DOCUMENT_TYPE" and "metadata.type_code" in violations_of(error)


def test_metadata_not_matching_the_schema_is_refused(api):
    metadata = {"full_name": "Nguyễn Thị Mai", "date_of_birth": "02/09/2016"}
    error = _refused(api, api.issue_messages(unique_pdf(), new_citizen(), metadata=metadata))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert {"metadata.metadata.date_of_birth", "metadata.metadata.sex"} <= violations_of(error)


def test_a_bad_issuer_signature_is_refused(api):
    content = unique_pdf()
    error = _refused(api, api.issue_messages(content, new_citizen(), signed_content=content + b"other"))
    assert reason_of(error) == "BAD_ISSUER_SIGNATURE"


def test_an_issue_without_the_scope_is_refused(api):
    error = _refused(api, api.issue_messages(unique_pdf(), new_citizen()), metadata=api.receiver("STP-HCM"))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and reason_of(error) == "MISSING_SCOPE"


def test_metadata_must_come_first(api):
    def messages():
        yield pb.IssueDocumentRequest(chunk=PDF)

    error = _refused(api, messages())
    assert reason_of(error) == "METADATA_FIRST"


def test_a_client_that_cancels_mid_stream_leaves_nothing_behind(api):
    citizen_id = new_citizen()
    content = unique_pdf("cancelled") + bytes(3 * 1024 * 1024)
    messages = api.issue_messages(content, citizen_id, chunk_bytes=1024 * 1024)
    release = threading.Event()
    sent = threading.Event()

    def stalled():
        yield next(messages)
        yield next(messages)
        yield next(messages)
        sent.set()
        release.wait(10)
        yield from messages

    before = api.stored()
    call = api.stub.IssueDocument.future(stalled(), metadata=api.issuer(), timeout=30)
    assert sent.wait(10)
    time.sleep(0.3)  # the server is now holding two megabytes of an unfinished upload
    call.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        call.result()
    time.sleep(1.0)  # give a (wrong) late put or commit the time to show up before concluding
    assert api.stored() == before
    assert api.stub.ListDocuments(pb.ListDocumentsRequest(), metadata=api.citizen(citizen_id)).documents == []


def test_content_tampered_in_storage_is_reported_and_never_served(api):
    citizen_id = new_citizen()
    content = unique_pdf("original")
    document = api.issue(content, citizen_id)
    forged = content.replace(b"Catalog", b"Catalof")
    api.s3.put_object(api.bucket, f"sha256/{document.content_sha256}", io.BytesIO(forged), len(forged))

    check = api.stub.VerifyDocument(pb.VerifyDocumentRequest(document_id=document.document_id),
                                    metadata=api.citizen(citizen_id))
    assert check.verification.verification_status == pb.VERIFICATION_STATUS_TAMPERED
    assert not check.verification.valid
    assert check.verification.actual_sha256 == hashlib.sha256(forged).hexdigest()

    for delivery in (pb.CONTENT_DELIVERY_STREAM, pb.CONTENT_DELIVERY_PRESIGNED_URL):
        with pytest.raises(grpc.RpcError) as refused:
            list(api.stub.DownloadDocument(pb.DownloadDocumentRequest(document_id=document.document_id,
                                                                      delivery=delivery),
                                           metadata=api.citizen(citizen_id)))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert reason_of(refused.value) == "CONTENT_TAMPERED"

    share = api.share(citizen_id, [document.document_id])
    messages = api.redeem(share.share_id)
    headers = [message.document for message in messages if message.HasField("document")]
    assert [header.verification.verification_status for header in headers] == [pb.VERIFICATION_STATUS_TAMPERED]
    assert not headers[0].content_follows and headers[0].download_url == ""
    assert not any(message.HasField("chunk") for message in messages)
    assert "TAMPERING_DETECTED" in api.log_actions(citizen_id)


def test_download_streams_the_verified_bytes(api):
    citizen_id = new_citizen()
    content = unique_pdf("download") + bytes(1_300_000)
    document = api.issue(content, citizen_id)
    messages = list(api.stub.DownloadDocument(pb.DownloadDocumentRequest(document_id=document.document_id),
                                              metadata=api.citizen(citizen_id)))
    assert messages[0].header.verification.valid
    assert b"".join(message.chunk for message in messages[1:]) == content
    assert api.log_actions(citizen_id)[-1] == "DOWNLOADED"


def test_a_presigned_url_serves_the_content_and_lives_at_most_five_minutes(api):
    citizen_id = new_citizen()
    content = unique_pdf("presigned")
    document = api.issue(content, citizen_id)
    [message] = list(api.stub.DownloadDocument(
        pb.DownloadDocumentRequest(document_id=document.document_id, delivery=pb.CONTENT_DELIVERY_PRESIGNED_URL),
        metadata=api.citizen(citizen_id)))
    header = message.header
    query = urllib.parse.parse_qs(urllib.parse.urlparse(header.download_url).query)
    assert int(query["X-Amz-Expires"][0]) <= 300
    lifetime = header.download_url_expires_at.ToSeconds() - header.verification.checked_at.ToSeconds()
    assert 0 < lifetime <= 300
    with urllib.request.urlopen(header.download_url, timeout=10) as response:
        assert response.read() == content
        # A browser opening the link saves the file; the object store's origin never renders it.
        assert response.headers["Content-Disposition"].startswith("attachment")


def test_concurrent_issues_racing_on_one_key_leave_only_the_winner_stored(api):
    """The database's unique key decides: the loser's insert waits for the winner's row and is told the key
    is used, before it puts anything; if it failed later, its object would have to be removed again. Either
    way exactly one document and one object remain."""
    from concurrent.futures import ThreadPoolExecutor

    for round_number in range(RACE_ROUNDS):
        citizen_id = new_citizen()
        contents = [unique_pdf(f"racer-{round_number}-{side}") for side in range(2)]
        before = api.objects()
        key = f"race-{citizen_id}"

        def attempt(content, citizen_id=citizen_id, key=key):
            try:
                return api.stub.IssueDocument(api.issue_messages(content, citizen_id, key=key),
                                              metadata=api.issuer(), timeout=30).document
            except grpc.RpcError as error:
                return error

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(attempt, contents))
        documents = [outcome for outcome in outcomes if isinstance(outcome, pb.Document)]
        errors = [outcome for outcome in outcomes if isinstance(outcome, grpc.RpcError)]
        assert len(documents) == 1 and len(errors) == 1
        assert errors[0].code() == grpc.StatusCode.ABORTED
        assert reason_of(errors[0]) in ("IDEMPOTENCY_KEY_REUSED", "CONCURRENT_CHANGE")
        assert api.objects() - before == {f"sha256/{documents[0].content_sha256}"}
