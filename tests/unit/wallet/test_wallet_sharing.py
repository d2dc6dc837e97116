"""Reading, verifying, sharing, redeeming, requests, lifecycle and the access log, on fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from dvc.wallet.v1 import wallet_pb2
from wallet_fakes import (
    CITIZEN,
    JUSTICE,
    OTHER_CITIZEN,
    PDF,
    RECEIVER,
    FakeLog,
    FakeUnitOfWork,
    agency,
    citizen,
    issue_command,
)

from servicekit.auth import Actor as TokenActor
from servicekit.auth import reset_principal, set_principal
from servicekit.errors import FailedPrecondition, InvalidArgument, NotFound, PermissionDenied, Unavailable
from wallet_service.domain.access_log import LogEvent, next_entry
from wallet_service.domain.model import (
    AccessAction,
    DocumentStatus,
    RequestStatus,
    ShareStatus,
    VerificationStatus,
)
from wallet_service.domain.model import Actor as LogActor
from wallet_service.entrypoints.grpc_servicer import WalletServicer
from wallet_service.service_layer.handlers import ShareCommand, UploadCommand, WalletHandlers

ISSUER = agency(JUSTICE, "wallet.issue")
REDEEMER = agency(RECEIVER, "wallet.redeem")


def _issue(wallet, content=PDF, key="issue-1", **changes):
    document, _ = wallet.handlers.issue_document(ISSUER, issue_command(content, idempotency_key=key, **changes),
                                                 [content])
    return document


def _share(wallet, document_ids=(), type_codes=(), key="share-1", **changes):
    fields = dict(agency_code=RECEIVER, dossier_code="000.00.01.H29-260301-0001", procedure_code="1.001612",
                  document_ids=tuple(document_ids), type_codes=tuple(type_codes), purpose="Đăng ký khai sinh lại",
                  idempotency_key=key)
    fields.update(changes)
    return wallet.handlers.create_share(citizen(), ShareCommand(**fields))


def _actions(wallet, citizen_id=CITIZEN):
    return [entry.action for entry in wallet.database.log[citizen_id]]


# --- verification and tampering ---------------------------------------------------------------------------


def test_an_intact_issued_document_verifies(wallet):
    document = _issue(wallet)
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.verification_status is VerificationStatus.VERIFIED
    assert verification.valid and verification.signature_valid and verification.content_checked
    assert _actions(wallet)[-1] is AccessAction.VERIFIED


def test_content_altered_in_storage_is_reported_tampered_and_never_served(wallet):
    document = _issue(wallet)
    wallet.storage.objects[f"sha256/{document.content_sha256}"] = PDF.replace(b"Catalog", b"Catalug")
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.verification_status is VerificationStatus.TAMPERED and not verification.valid
    with pytest.raises(FailedPrecondition) as refused:
        wallet.handlers.download(citizen(), document.document_id, presigned=False)
    assert refused.value.reason == "CONTENT_TAMPERED"
    with pytest.raises(FailedPrecondition):
        wallet.handlers.download(citizen(), document.document_id, presigned=True)
    assert AccessAction.TAMPERING_DETECTED in _actions(wallet)
    assert AccessAction.DOWNLOADED not in _actions(wallet)


def test_missing_content_is_reported_and_not_served(wallet):
    document = _issue(wallet)
    wallet.storage.objects.clear()
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.verification_status is VerificationStatus.CONTENT_MISSING
    with pytest.raises(FailedPrecondition) as refused:
        wallet.handlers.download(citizen(), document.document_id, presigned=False)
    assert refused.value.reason == "CONTENT_CONTENT_MISSING"


def test_metadata_altered_in_the_database_breaks_the_signature(wallet):
    document = _issue(wallet)
    wallet.database.documents[document.document_id].metadata["full_name"] = "Someone Else"
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.verification_status is VerificationStatus.SIGNATURE_INVALID and not verification.valid


def test_download_streams_verified_content_or_a_short_lived_url(wallet):
    document = _issue(wallet)
    streamed = wallet.handlers.download(citizen(), document.document_id, presigned=False)
    assert streamed.content == PDF and streamed.verification.valid
    linked = wallet.handlers.download(citizen(), document.document_id, presigned=True)
    assert linked.content is None and linked.url
    assert linked.url_expires_at - wallet.clock.now <= timedelta(minutes=5)
    assert _actions(wallet)[-2:] == [AccessAction.DOWNLOADED, AccessAction.DOWNLOADED]


def test_a_self_uploaded_document_is_never_valid_but_is_intact(wallet):
    document, _ = wallet.handlers.upload_own_document(citizen(), UploadCommand("", "scan", {}, "u1"), [PDF])
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.verification_status is VerificationStatus.UNSIGNED_INTACT
    assert not verification.valid and not verification.signature_valid


# --- lifecycle ---------------------------------------------------------------------------------------------


def test_revocation_is_seen_by_verifiers_and_logged(wallet):
    document = _issue(wallet)
    revoked = wallet.handlers.revoke_document(ISSUER, document.document_id, "cấp sai thông tin")
    assert revoked.status_at(wallet.clock.now) is DocumentStatus.REVOKED
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.document_status is DocumentStatus.REVOKED and not verification.valid
    assert AccessAction.DOCUMENT_REVOKED in _actions(wallet)
    with pytest.raises(InvalidArgument):
        wallet.handlers.revoke_document(ISSUER, document.document_id, "")


def test_a_document_past_valid_until_shows_as_expired(wallet):
    until = wallet.clock.now.replace(microsecond=0) + timedelta(days=10)
    document = _issue(wallet, valid_until=until)
    assert document.status_at(wallet.clock.now) is DocumentStatus.VALID
    wallet.clock.advance(days=11)
    _, verification = wallet.handlers.verify(citizen(), document.document_id)
    assert verification.document_status is DocumentStatus.EXPIRED and not verification.valid
    assert wallet.handlers.list_documents(citizen()) == []
    assert [d.document_id for d in wallet.handlers.list_documents(citizen(), include_inactive=True)] == [
        document.document_id]


def test_supersede_links_an_existing_replacement(wallet):
    old = _issue(wallet, key="v1")
    new = _issue(wallet, content=PDF + b"%v2", key="v2")
    stored_old, replacement = wallet.handlers.supersede_document(ISSUER, old.document_id, new.document_id,
                                                                 "corrected name")
    assert stored_old.superseded_by_document_id == new.document_id
    assert stored_old.status_at(wallet.clock.now) is DocumentStatus.SUPERSEDED
    assert replacement.status_at(wallet.clock.now) is DocumentStatus.VALID


# --- sharing and redeeming ----------------------------------------------------------------------------------


def test_a_share_is_redeemed_by_its_agency_with_verified_content(wallet):
    document = _issue(wallet)
    share = _share(wallet, [document.document_id], max_uses=1)
    redemption = wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert [d.document_id for d in redemption.documents] == [document.document_id]
    delivery = wallet.handlers.deliver(REDEEMER, redemption.documents[0], presigned=False, read_content=True)
    assert delivery.content == PDF and delivery.verification.valid
    redeemed = [entry for entry in wallet.database.log[CITIZEN] if entry.action is AccessAction.REDEEMED]
    assert len(redeemed) == 1
    assert (redeemed[0].agency_code, redeemed[0].dossier_code, redeemed[0].procedure_code,
            redeemed[0].document_id) == (RECEIVER, share.dossier_code, share.procedure_code, document.document_id)


def test_a_share_redeemed_by_the_wrong_agency_is_refused(wallet):
    share = _share(wallet, [_issue(wallet).document_id])
    with pytest.raises(PermissionDenied) as refused:
        wallet.handlers.redeem_share(agency("UBND-Q3", "wallet.redeem"), share.share_id)
    assert refused.value.reason == "SHARE_WRONG_AGENCY"
    with pytest.raises(PermissionDenied) as refused:
        wallet.handlers.redeem_share(agency(RECEIVER, "wallet.issue"), share.share_id)
    assert refused.value.reason == "MISSING_SCOPE"
    assert wallet.database.shares[share.share_id].use_count == 0


def test_a_revoked_share_cannot_be_redeemed(wallet):
    share = _share(wallet, [_issue(wallet).document_id])
    wallet.handlers.revoke_share(citizen(), share.share_id)
    with pytest.raises(FailedPrecondition) as refused:
        wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert refused.value.reason == "SHARE_REVOKED"
    assert AccessAction.SHARE_REVOKED in _actions(wallet)


def test_an_expired_share_cannot_be_redeemed(wallet):
    share = _share(wallet, [_issue(wallet).document_id], expires_at=wallet.clock.now + timedelta(days=2))
    wallet.clock.advance(days=2)
    with pytest.raises(FailedPrecondition) as refused:
        wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert refused.value.reason == "SHARE_EXPIRED"


def test_a_single_use_share_works_once(wallet):
    share = _share(wallet, [_issue(wallet).document_id], max_uses=1)
    wallet.handlers.redeem_share(REDEEMER, share.share_id)
    with pytest.raises(FailedPrecondition) as refused:
        wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert refused.value.reason == "SHARE_USED_UP"


def test_a_retried_share_naming_a_document_twice_returns_the_first_share(wallet):
    document_id = _issue(wallet).document_id
    first = _share(wallet, [document_id, document_id], type_codes=["BIRTH_CERT", "BIRTH_CERT"], key="twice")
    again = _share(wallet, [document_id, document_id], type_codes=["BIRTH_CERT", "BIRTH_CERT"], key="twice")
    assert again.share_id == first.share_id and list(wallet.database.shares) == [first.share_id]
    assert (again.document_ids, again.type_codes) == ([document_id], ["BIRTH_CERT"])


def test_share_rules_expiry_at_most_thirty_days_purpose_required(wallet):
    document = _issue(wallet)
    with pytest.raises(InvalidArgument) as refused:
        _share(wallet, [document.document_id], expires_at=wallet.clock.now + timedelta(days=30, seconds=1))
    assert [v.field for v in refused.value.violations] == ["expires_at"]
    with pytest.raises(InvalidArgument) as refused:
        _share(wallet, [document.document_id], dossier_code="", procedure_code="")
    assert {v.field for v in refused.value.violations} == {"dossier_code", "procedure_code"}
    with pytest.raises(InvalidArgument):
        _share(wallet)
    thirty_days = _share(wallet, [document.document_id], expires_at=wallet.clock.now + timedelta(days=30))
    assert thirty_days.status_at(wallet.clock.now) is ShareStatus.ACTIVE


def test_a_share_by_type_hands_over_the_current_documents_of_that_type(wallet):
    old = _issue(wallet, key="v1")
    current = _issue(wallet, content=PDF + b"%v2", key="v2", supersedes=old.document_id)
    share = _share(wallet, type_codes=["BIRTH_CERT"])
    redemption = wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert [d.document_id for d in redemption.documents] == [current.document_id]


def test_a_revoked_document_cannot_be_shared(wallet):
    document = _issue(wallet)
    wallet.handlers.revoke_document(ISSUER, document.document_id, "void")
    with pytest.raises(FailedPrecondition):
        _share(wallet, [document.document_id])


def test_metadata_only_redemption_checks_the_signature_without_reading_content(wallet):
    document = _issue(wallet)
    share = _share(wallet, [document.document_id])
    redemption = wallet.handlers.redeem_share(REDEEMER, share.share_id)
    wallet.storage.objects.clear()
    delivery = wallet.handlers.deliver(REDEEMER, redemption.documents[0], presigned=False, read_content=False)
    assert delivery.content is None and not delivery.verification.content_checked
    assert delivery.verification.signature_valid


def test_redeeming_tampered_content_reports_it_and_hands_nothing_over(wallet):
    document = _issue(wallet)
    share = _share(wallet, [document.document_id])
    wallet.storage.objects[f"sha256/{document.content_sha256}"] = b"%PDF-forged"
    redemption = wallet.handlers.redeem_share(REDEEMER, share.share_id)
    delivery = wallet.handlers.deliver(REDEEMER, redemption.documents[0], presigned=True, read_content=True)
    assert delivery.verification.verification_status is VerificationStatus.TAMPERED
    assert delivery.content is None and delivery.url == ""


# --- requests for documents ----------------------------------------------------------------------------------


def test_an_approved_request_becomes_a_share_for_the_requesting_agency(wallet):
    document = _issue(wallet)
    request = wallet.handlers.request_documents(REDEEMER, citizen_id=CITIZEN, type_codes=["BIRTH_CERT"],
                                                dossier_code="HS-2026-1", procedure_code="1.001612",
                                                purpose="Cấp hộ chiếu", idempotency_key="req-1")
    assert [r.request_id for r in wallet.handlers.list_document_requests(citizen())] == [request.request_id]
    answered, share = wallet.handlers.answer_document_request(citizen(), request.request_id, approve=True)
    assert answered.status is RequestStatus.APPROVED and share is not None
    assert (share.agency_code, share.dossier_code, share.type_codes) == (RECEIVER, "HS-2026-1", ["BIRTH_CERT"])
    redemption = wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert [d.document_id for d in redemption.documents] == [document.document_id]
    assert {AccessAction.DOCUMENTS_REQUESTED, AccessAction.REQUEST_APPROVED, AccessAction.SHARED} <= set(
        _actions(wallet))


def test_a_declined_request_shares_nothing_and_cannot_be_approved_later(wallet):
    request = wallet.handlers.request_documents(REDEEMER, citizen_id=CITIZEN, type_codes=["BIRTH_CERT"],
                                                dossier_code="HS-2026-1", procedure_code="1.001612", purpose="",
                                                idempotency_key="req-1")
    answered, share = wallet.handlers.answer_document_request(citizen(), request.request_id, approve=False)
    assert answered.status is RequestStatus.DECLINED and share is None and not wallet.database.shares
    with pytest.raises(FailedPrecondition):
        wallet.handlers.answer_document_request(citizen(), request.request_id, approve=True)
    assert AccessAction.REQUEST_DECLINED in _actions(wallet)


@pytest.mark.parametrize("field", ["agency_code", "dossier_code", "procedure_code"])
def test_a_share_code_with_a_trailing_newline_is_refused(wallet, field):
    document_id = _issue(wallet).document_id
    with pytest.raises(InvalidArgument) as refused:
        _share(wallet, [document_id], **{field: {"agency_code": RECEIVER, "dossier_code": "HS-1",
                                                  "procedure_code": "1.001612"}[field] + "\n"})
    assert [v.field for v in refused.value.violations] == [field]


def test_a_requested_citizen_id_with_a_trailing_newline_is_refused(wallet):
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.request_documents(REDEEMER, citizen_id=CITIZEN + "\n", type_codes=["BIRTH_CERT"],
                                          dossier_code="HS", procedure_code="P", purpose="", idempotency_key="r")
    assert [v.field for v in refused.value.violations] == ["citizen_id"]


def test_requests_name_known_types_and_a_real_citizen(wallet):
    with pytest.raises(InvalidArgument) as refused:
        wallet.handlers.request_documents(REDEEMER, citizen_id="12345", type_codes=["VISA"], dossier_code="HS",
                                          procedure_code="P", purpose="", idempotency_key="r")
    assert {v.field for v in refused.value.violations} == {"citizen_id", "type_codes[0]"}


# --- delegation -----------------------------------------------------------------------------------------------


def test_a_guardian_reaches_the_minors_wallet_and_the_log_says_who_acted_for_whom(wallet):
    document = _issue(wallet)
    guardian = citizen(CITIZEN, actor=TokenActor(subject=OTHER_CITIZEN, kind="citizen", relation="guardian"))
    wallet.handlers.get_document(guardian, document.document_id)
    _share(wallet, [document.document_id])
    wallet.handlers.create_share(guardian, ShareCommand(agency_code=RECEIVER, dossier_code="HS-9",
                                                        procedure_code="1.0", document_ids=(document.document_id,),
                                                        idempotency_key="by-guardian"))
    entries = wallet.database.log[CITIZEN]
    read = next(entry for entry in entries if entry.action is AccessAction.READ)
    assert (read.actor_subject, read.on_behalf_of, read.relation) == (OTHER_CITIZEN, CITIZEN, "guardian")
    shared = [entry for entry in entries if entry.action is AccessAction.SHARED]
    assert [(e.actor_subject, e.on_behalf_of) for e in shared] == [(CITIZEN, ""), (OTHER_CITIZEN, CITIZEN)]


# --- isolation: one test per rule ------------------------------------------------------------------------------


def test_a_citizen_cannot_read_another_wallets_document(wallet):
    document = _issue(wallet)
    stranger = citizen(OTHER_CITIZEN)
    for attempt in (lambda: wallet.handlers.get_document(stranger, document.document_id),
                    lambda: wallet.handlers.verify(stranger, document.document_id),
                    lambda: wallet.handlers.download(stranger, document.document_id, presigned=False)):
        with pytest.raises(NotFound):
            attempt()
    with pytest.raises(PermissionDenied):
        wallet.handlers.list_documents(stranger, citizen_id=CITIZEN)
    assert wallet.handlers.list_documents(stranger) == []


def test_a_citizen_cannot_share_delete_or_revoke_what_is_not_theirs(wallet):
    document = _issue(wallet)
    share = _share(wallet, [document.document_id])
    stranger = citizen(OTHER_CITIZEN)
    with pytest.raises(NotFound):
        wallet.handlers.create_share(stranger, ShareCommand(agency_code=RECEIVER, dossier_code="HS",
                                                            procedure_code="P", document_ids=(document.document_id,),
                                                            idempotency_key="steal"))
    with pytest.raises(NotFound):
        wallet.handlers.delete_own_document(stranger, document.document_id)
    with pytest.raises(NotFound):
        wallet.handlers.revoke_share(stranger, share.share_id)
    assert wallet.handlers.list_shares(stranger) == []


def test_a_citizen_cannot_answer_or_see_another_citizens_request(wallet):
    request = wallet.handlers.request_documents(REDEEMER, citizen_id=CITIZEN, type_codes=["BIRTH_CERT"],
                                                dossier_code="HS", procedure_code="P", purpose="",
                                                idempotency_key="r1")
    stranger = citizen(OTHER_CITIZEN)
    with pytest.raises(NotFound):
        wallet.handlers.answer_document_request(stranger, request.request_id, approve=True)
    assert wallet.handlers.list_document_requests(stranger) == []


def test_a_citizens_access_log_is_their_own(wallet):
    _issue(wallet)
    stranger = citizen(OTHER_CITIZEN)
    assert wallet.handlers.list_access_log(stranger) == []
    assert wallet.handlers.verify_access_log(stranger).entries_checked == 0
    with pytest.raises(PermissionDenied):
        wallet.handlers.list_access_log(REDEEMER)


def test_an_agency_reads_what_it_issued_but_not_what_others_issued(wallet):
    document = _issue(wallet)
    assert wallet.handlers.get_document(ISSUER, document.document_id).document_id == document.document_id
    other_issuer = agency("CA-HCM", "wallet.issue")
    for attempt in (lambda: wallet.handlers.get_document(other_issuer, document.document_id),
                    lambda: wallet.handlers.verify(other_issuer, document.document_id),
                    lambda: wallet.handlers.download(other_issuer, document.document_id, presigned=False),
                    lambda: wallet.handlers.revoke_document(other_issuer, document.document_id, "not mine")):
        with pytest.raises(NotFound):
            attempt()
    assert wallet.handlers.list_documents(other_issuer, citizen_id=CITIZEN) == []


def test_an_agency_reads_a_shared_document_only_after_redeeming_its_share(wallet):
    document = _issue(wallet)
    share = _share(wallet, [document.document_id])
    with pytest.raises(NotFound):
        wallet.handlers.get_document(REDEEMER, document.document_id)
    wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert wallet.handlers.verify(REDEEMER, document.document_id)[1].valid
    # Content goes only through the share (so its use count means something), not by document id.
    with pytest.raises(NotFound):
        wallet.handlers.download(REDEEMER, document.document_id, presigned=False)
    wallet.handlers.revoke_share(citizen(), share.share_id)
    with pytest.raises(NotFound):
        wallet.handlers.get_document(REDEEMER, document.document_id)


def test_an_agency_loses_a_redeemed_document_when_its_share_expires(wallet):
    document = _issue(wallet)
    # Single use and used up at once: status checks stay open until expiry, not until the last use.
    share = _share(wallet, [document.document_id], max_uses=1, expires_at=wallet.clock.now + timedelta(days=2))
    wallet.handlers.redeem_share(REDEEMER, share.share_id)
    assert wallet.handlers.get_document(REDEEMER, document.document_id).document_id == document.document_id
    assert wallet.handlers.verify(REDEEMER, document.document_id)[1].valid
    wallet.clock.advance(days=2)
    for attempt in (lambda: wallet.handlers.get_document(REDEEMER, document.document_id),
                    lambda: wallet.handlers.verify(REDEEMER, document.document_id)):
        with pytest.raises(NotFound) as refused:
            attempt()
        assert refused.value.reason == "DOCUMENT_NOT_FOUND"


def test_an_agency_sees_only_shares_and_requests_addressed_to_it(wallet):
    _share(wallet, [_issue(wallet).document_id])
    wallet.handlers.request_documents(REDEEMER, citizen_id=CITIZEN, type_codes=["BIRTH_CERT"], dossier_code="HS",
                                      procedure_code="P", purpose="", idempotency_key="r1")
    other = agency("UBND-Q3", "wallet.redeem")
    assert wallet.handlers.list_shares(other) == [] and wallet.handlers.list_document_requests(other) == []
    assert len(wallet.handlers.list_shares(REDEEMER)) == 1
    assert len(wallet.handlers.list_document_requests(REDEEMER)) == 1


# --- the access log -------------------------------------------------------------------------------------------


def test_every_action_lands_in_one_intact_chain(wallet):
    document = _issue(wallet)
    wallet.handlers.get_document(citizen(), document.document_id)
    share = _share(wallet, [document.document_id])
    wallet.handlers.redeem_share(REDEEMER, share.share_id)
    wallet.handlers.revoke_share(citizen(), share.share_id)
    wallet.handlers.download(citizen(), document.document_id, presigned=False)
    assert _actions(wallet) == [AccessAction.ISSUED, AccessAction.READ, AccessAction.SHARED, AccessAction.REDEEMED,
                                AccessAction.SHARE_REVOKED, AccessAction.DOWNLOADED]
    check = wallet.handlers.verify_access_log(citizen())
    assert check.intact and check.entries_checked == 6
    newest_first = wallet.handlers.list_access_log(citizen())
    assert [entry.sequence for entry in newest_first] == [6, 5, 4, 3, 2, 1]


def test_an_edited_log_entry_is_reported(wallet):
    from dataclasses import replace

    document = _issue(wallet)
    wallet.handlers.get_document(citizen(), document.document_id)
    wallet.handlers.get_document(ISSUER, document.document_id)
    entries = wallet.database.log[CITIZEN]
    entries[1] = replace(entries[1], actor_subject="nobody")
    check = wallet.handlers.verify_access_log(citizen())
    assert not check.intact and check.first_broken_sequence == 2


def test_an_entry_committed_while_the_log_is_verified_is_no_false_alarm(wallet):
    document = _issue(wallet)
    wallet.handlers.get_document(citizen(), document.document_id)
    _LogWithAnAppendAfterTheHead.raced = False
    racing = WalletHandlers(lambda: _EntryCommitsAfterTheHeadIsRead(wallet.database), wallet.storage,
                            clock=wallet.clock)
    check = racing.verify_access_log(citizen())
    assert check.intact and check.entries_checked == 3   # the racing entry is verified with the head it moved
    # What was really changed is still caught.
    entries = wallet.database.log[CITIZEN]
    entries[1] = replace(entries[1], actor_subject="nobody")
    check = racing.verify_access_log(citizen())
    assert not check.intact and check.first_broken_sequence == 2


def test_an_entry_written_without_moving_the_head_is_caught(wallet):
    wallet.handlers.get_document(citizen(), _issue(wallet).document_id)
    sequence, last_hash = FakeLog(wallet.database).head(CITIZEN, lock=False)
    # Appended straight into the table, as someone with database access and no head update would.
    wallet.database.log[CITIZEN].append(next_entry(CITIZEN, sequence + 1, last_hash, LogActor("intruder", "client"),
                                                   LogEvent(AccessAction.READ), datetime(2026, 3, 1, tzinfo=UTC)))
    assert not wallet.handlers.verify_access_log(citizen()).intact


class _EntryCommitsAfterTheHeadIsRead(FakeUnitOfWork):
    """A transaction that sees another one's log entry commit between reading the head and reading the chain
    (each statement of a PostgreSQL READ COMMITTED transaction sees what was committed when it started)."""

    def __enter__(self) -> FakeUnitOfWork:
        super().__enter__()
        self.log = _LogWithAnAppendAfterTheHead(self.state)
        return self


class _LogWithAnAppendAfterTheHead(FakeLog):
    raced = False   # one concurrent append, the first time the head is read

    def head(self, citizen_id: str, *, lock: bool) -> tuple[int, str]:
        sequence, last_hash = super().head(citizen_id, lock=lock)
        if not _LogWithAnAppendAfterTheHead.raced:
            _LogWithAnAppendAfterTheHead.raced = True
            self.append([next_entry(citizen_id, sequence + 1, last_hash, LogActor("ubnd-q1-system", "client"),
                                    LogEvent(AccessAction.READ), datetime(2026, 3, 1, 9, 0, tzinfo=UTC))])
        return sequence, last_hash


# --- orphans --------------------------------------------------------------------------------------------------


def test_the_sweep_removes_old_unreferenced_objects_only(wallet):
    document = _issue(wallet)
    import io

    wallet.storage.put("sha256/" + "f" * 64, io.BytesIO(b"%PDF-orphan"), 11, "application/pdf")
    wallet.storage.modified["sha256/" + "f" * 64] -= timedelta(hours=2)
    wallet.storage.put("sha256/" + "e" * 64, io.BytesIO(b"%PDF-in-flight"), 14, "application/pdf")
    wallet.storage.modified[f"sha256/{document.content_sha256}"] -= timedelta(hours=2)
    wallet.clock.now = max(wallet.storage.modified.values())
    removed = wallet.handlers.sweep_orphans(timedelta(minutes=15))
    assert removed == 1
    assert set(wallet.storage.objects) == {f"sha256/{document.content_sha256}", "sha256/" + "e" * 64}


def test_a_redemption_the_storage_fails_gives_its_use_back_so_the_retry_succeeds(wallet, monkeypatch):
    share = _share(wallet, [_issue(wallet).document_id], max_uses=1)
    servicer = WalletServicer(wallet.handlers, wallet.clock)
    request = wallet_pb2.RedeemShareRequest(share_id=share.share_id)

    def unreachable(key: str, max_bytes: int) -> bytes | None:
        raise Unavailable("object storage unreachable (ConnectTimeout)", reason="STORAGE_UNAVAILABLE")

    token = set_principal(REDEEMER)
    try:
        with monkeypatch.context() as outage:
            outage.setattr(wallet.storage, "get", unreachable)
            with pytest.raises(Unavailable):
                list(servicer.RedeemShare(request, None))
        assert wallet.database.shares[share.share_id].use_count == 0
        # Storage is back: the agency's retry gets the document, and only then is the single use spent.
        delivered = list(servicer.RedeemShare(request, None))
        assert delivered[1].document.verification.valid and delivered[2].chunk.data
        with pytest.raises(FailedPrecondition):
            list(servicer.RedeemShare(request, None))
    finally:
        reset_principal(token)
    assert _actions(wallet)[-3:] == [AccessAction.REDEEMED, AccessAction.REDEMPTION_FAILED, AccessAction.REDEEMED]


def test_a_redemption_that_handed_a_document_over_keeps_its_use_when_the_next_one_fails(wallet, monkeypatch):
    first, second = _issue(wallet), _issue(wallet, content=PDF + b"2", key="issue-2")
    share = _share(wallet, [first.document_id, second.document_id], max_uses=1)
    servicer = WalletServicer(wallet.handlers, wallet.clock)
    reads = []
    real_get = wallet.storage.get

    def second_read_fails(key: str, max_bytes: int) -> bytes | None:
        reads.append(key)
        if len(reads) == 2:
            raise Unavailable("object storage unreachable", reason="STORAGE_UNAVAILABLE")
        return real_get(key, max_bytes)

    monkeypatch.setattr(wallet.storage, "get", second_read_fails)
    token = set_principal(REDEEMER)
    try:
        with pytest.raises(Unavailable):
            list(servicer.RedeemShare(wallet_pb2.RedeemShareRequest(share_id=share.share_id), None))
    finally:
        reset_principal(token)
    # One document went out: giving the use back would let a single-use share hand it over a second time.
    assert wallet.database.shares[share.share_id].use_count == 1
    assert AccessAction.REDEMPTION_FAILED not in _actions(wallet)
