"""The wallet pages over a fake wallet: what a citizen sees of their own documents and shares, nothing of anyone
else's, form errors they can act on, and content served so it can never run as a page."""

from __future__ import annotations

import copy
import io
import re
from datetime import UTC, datetime

from pages_fakes import CITIZEN_A, CITIZEN_B, NAMES, FakeIdentity, FakeWallet, csrf_of, log_in, wallet_app

from servicekit.web.sessions import MemorySessionStore
from wallet_service.entrypoints.pages.client import AccessEntryView


def signed_in(wallet: FakeWallet, identity: FakeIdentity, citizen: str = CITIZEN_A) -> object:
    client = wallet_app(wallet, identity).test_client()
    log_in(client, citizen)
    return client


def test_the_documents_page_lists_trust_issuer_and_validity_as_the_listing_says(wallet: FakeWallet,
                                                                                identity: FakeIdentity) -> None:
    wallet.add_document(CITIZEN_A, "", issuer="STP-HCM")
    wallet.add_document(CITIZEN_A, "Bản chụp hộ khẩu", trust="self_uploaded", type_code="")
    page = signed_in(wallet, identity).get("/wallet/").get_data(as_text=True)  # type: ignore[attr-defined]
    rows = page.split("<tbody>")[1].split("</tbody>")[0].split("<tr>")[1:]
    issued = next(row for row in rows if "Giấy khai sinh" in row)
    uploaded = next(row for row in rows if "Bản chụp hộ khẩu" in row)
    assert "STP-HCM" in issued and "Do cơ quan cấp và ký số" in issued and "Hiệu lực" in issued
    assert "01/03/2026" in issued  # issued 2026-03-01 02:00 UTC is 09:00 in Viet Nam, same day
    assert "Bạn (tự tải lên)" in uploaded and "Bạn tự tải lên (chưa được xác thực)" in uploaded


def test_only_the_document_page_verifies_and_the_list_reads_no_content_and_writes_nothing(
        wallet: FakeWallet, identity: FakeIdentity) -> None:
    store = MemorySessionStore()
    client = wallet_app(wallet, identity, sessions=store).test_client()
    log_in(client, CITIZEN_A)
    documents = [wallet.add_document(CITIZEN_A, f"Giấy tờ {number}") for number in range(3)]
    cookie = client.get_cookie("dvc_session")
    assert cookie is not None
    before = store.load(cookie.value)
    assert before is not None
    kept = copy.deepcopy(before.data)
    listed = client.get("/wallet/")
    assert listed.status_code == 200 and all(item.document_id in listed.get_data(as_text=True) for item in documents)
    assert wallet.verified == []  # a check reads the whole content and is written to the citizen's access log
    assert "Đã xác minh chữ ký và nội dung" not in listed.get_data(as_text=True)
    after = store.load(cookie.value)
    assert "Set-Cookie" not in listed.headers and after is not None and after.data == kept  # nor kept any result

    page = client.get(f"/wallet/documents/{documents[1].document_id}").get_data(as_text=True)
    assert wallet.verified == [documents[1].document_id] and "Đã xác minh chữ ký và nội dung" in page


def test_another_citizens_document_share_and_content_answer_not_found(wallet: FakeWallet,
                                                                       identity: FakeIdentity) -> None:
    theirs = wallet.add_document(CITIZEN_B, "Giấy khai sinh của B")
    client_b = signed_in(wallet, identity, CITIZEN_B)
    form_b = client_b.get(f"/wallet/shares/new?document={theirs.document_id}")  # type: ignore[attr-defined]
    created = client_b.post("/wallet/shares/new", data={  # type: ignore[attr-defined]
        "csrf_token": csrf_of(form_b.get_data(as_text=True)), "document_ids": theirs.document_id,
        "agency_code": "HN", "dossier_code": "HS-1", "procedure_code": "1.001612", "expires_on": "2099-01-01",
        "max_uses": "0"})
    share_id = created.headers["Location"].split("/")[-1].split("?")[0]

    client_a = signed_in(wallet, identity, CITIZEN_A)
    for path in (f"/wallet/documents/{theirs.document_id}", f"/wallet/documents/{theirs.document_id}/content",
                 f"/wallet/shares/{share_id}", "/wallet/documents/no-such-id"):
        answer = client_a.get(path)  # type: ignore[attr-defined]
        assert answer.status_code == 404, path
        assert NAMES[CITIZEN_B] not in answer.get_data(as_text=True) and b"%PDF" not in answer.data
    token = csrf_of(client_a.get("/wallet/upload").get_data(as_text=True))  # type: ignore[attr-defined]
    revoke = client_a.post(f"/wallet/shares/{share_id}/revoke", data={"csrf_token": token})  # type: ignore[attr-defined]
    assert revoke.status_code == 404
    assert wallet.shares[share_id][1].status == "active"


def test_a_share_form_with_mistakes_comes_back_with_each_error_next_to_its_field(
        wallet: FakeWallet, identity: FakeIdentity) -> None:
    mine = wallet.add_document(CITIZEN_A, "")
    client = signed_in(wallet, identity)
    token = csrf_of(client.get("/wallet/shares/new").get_data(as_text=True))  # type: ignore[attr-defined]
    nothing_chosen = client.post("/wallet/shares/new", data={  # type: ignore[attr-defined]
        "csrf_token": token, "agency_code": "HN", "dossier_code": "HS-1", "expires_on": "not a date"})
    page = nothing_chosen.get_data(as_text=True)
    assert nothing_chosen.status_code == 400
    assert 'id="document_ids-error"' in page and "Hãy chọn ít nhất một giấy tờ." in page
    assert 'id="expires_at-error"' in page and 'aria-invalid="true"' in page
    assert 'value="HN"' in page   # what was typed is kept

    # The wallet's own field violations (here: no agency code) are shown beside that field.
    refused = client.post("/wallet/shares/new", data={  # type: ignore[attr-defined]
        "csrf_token": token, "document_ids": mine.document_id, "agency_code": "", "dossier_code": "HS-1",
        "procedure_code": "1.001612", "expires_on": "2099-01-01", "max_uses": "1"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'id="agency_code-error"' in body
    assert "the receiving agency&#39;s code is required" in body
    assert wallet.shares == {}


def test_a_granted_share_shows_its_code_and_expiry_within_thirty_days(wallet: FakeWallet,
                                                                      identity: FakeIdentity) -> None:
    mine = wallet.add_document(CITIZEN_A, "")
    client = signed_in(wallet, identity)
    token = csrf_of(client.get("/wallet/shares/new").get_data(as_text=True))  # type: ignore[attr-defined]
    far = "2099-12-31"  # beyond the limit: the share ends just inside the 30 days the wallet allows
    created = client.post("/wallet/shares/new", data={  # type: ignore[attr-defined]
        "csrf_token": token, "document_ids": mine.document_id, "agency_code": "UBND-Q1",
        "dossier_code": "000.00.01.H29-260301-0042", "procedure_code": "1.001612", "purpose": "Cấp lại",
        "expires_on": far, "max_uses": "1"})
    assert created.status_code == 303
    share = next(iter(wallet.shares.values()))[1]
    assert share.agency_code == "UBND-Q1" and share.max_uses == 1 and share.document_ids == [mine.document_id]
    assert share.expires_at is not None
    assert 29 * 86400 < (share.expires_at - datetime.now(UTC)).total_seconds() <= 30 * 86400
    page = client.get(created.headers["Location"]).get_data(as_text=True)  # type: ignore[attr-defined]
    assert share.share_id in page and "Đã chia sẻ." in page and "Thu hồi chia sẻ" in page


def test_an_upload_is_stored_and_an_empty_file_is_refused_with_a_message(wallet: FakeWallet,
                                                                          identity: FakeIdentity) -> None:
    client = signed_in(wallet, identity)
    token = csrf_of(client.get("/wallet/upload").get_data(as_text=True))  # type: ignore[attr-defined]
    stored = client.post("/wallet/upload", content_type="multipart/form-data", data={  # type: ignore[attr-defined]
        "csrf_token": token, "title": "Ảnh CCCD", "idempotency_key": "k1",
        "file": (io.BytesIO(b"\x89PNG\r\n\x1a\nfake"), "cccd.png")})
    assert stored.status_code == 303 and stored.headers["Location"].endswith("?uploaded=1")
    kept = [document for who, document, content in wallet.documents.values() if who == CITIZEN_A]
    assert [(item.title, item.trust) for item in kept] == [("Ảnh CCCD", "self_uploaded")]
    empty = client.post("/wallet/upload", content_type="multipart/form-data", data={  # type: ignore[attr-defined]
        "csrf_token": token, "title": "Rỗng", "file": (io.BytesIO(b""), "empty.pdf")})
    assert empty.status_code == 400 and "Tệp rỗng." in empty.get_data(as_text=True)
    missing = client.post("/wallet/upload", data={"csrf_token": token, "title": ""})  # type: ignore[attr-defined]
    text = missing.get_data(as_text=True)
    assert "Hãy chọn tệp cần tải lên." in text and "Hãy đặt tên cho giấy tờ." in text


def test_content_is_served_as_the_file_it_is_and_can_never_run_as_a_page(wallet: FakeWallet,
                                                                         identity: FakeIdentity) -> None:
    pdf = wallet.add_document(CITIZEN_A, "Giấy phép lái xe", b"%PDF-1.7 body", type_code="DRIVING_LICENCE")
    client = signed_in(wallet, identity)
    inline = client.get(f"/wallet/documents/{pdf.document_id}/content")  # type: ignore[attr-defined]
    assert inline.data == b"%PDF-1.7 body" and inline.mimetype == "application/pdf"
    assert inline.headers["Content-Disposition"].startswith("inline;")
    assert "sandbox" in inline.headers["Content-Security-Policy"]
    assert inline.headers["X-Content-Type-Options"] == "nosniff"
    download = client.get(f"/wallet/documents/{pdf.document_id}/content?download=1")  # type: ignore[attr-defined]
    assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+\.pdf"', download.headers["Content-Disposition"])


def test_the_access_log_says_who_acted_for_whom(wallet: FakeWallet, identity: FakeIdentity) -> None:
    document = wallet.add_document(CITIZEN_A, "")
    at = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)

    def entry(sequence: int, action: str, actor: str, kind: str, **extra: str) -> AccessEntryView:
        values = {"agency_code": "", "on_behalf_of": "", "relation": "", "document_id": document.document_id,
                  "share_id": "", "dossier_code": "", "procedure_code": "", "detail": "", **extra}
        return AccessEntryView(sequence, action, actor, kind, occurred_at=at, **values)  # type: ignore[arg-type]

    wallet.log[CITIZEN_A] = [
        entry(3, "redeemed", "hn-dossier-receiver", "client", agency_code="HN", dossier_code="HS-9",
              procedure_code="1.001612", share_id="share-xyz", detail="Cấp bản sao"),
        entry(2, "read", "079080000303", "citizen", on_behalf_of=CITIZEN_A, relation="guardian"),
        entry(1, "read", CITIZEN_A, "citizen"),
    ]
    client = signed_in(wallet, identity)
    page = client.get("/wallet/access-log").get_data(as_text=True)  # type: ignore[attr-defined]
    rows = page.split("<tbody>")[1].split("<tr")[1:]
    assert "hệ thống của HN" in rows[0] and "Hồ sơ HS-9" in rows[0] and "thủ tục 1.001612" in rows[0]
    assert "079080000303 (người giám hộ) thay mặt bạn" in rows[1]
    assert '<td data-label="Ai">Bạn</td>' in rows[2]
    assert "10:00 02/03/2026" in rows[0]   # 03:00 UTC is 10:00 in Viet Nam
    others = client.get("/wallet/access-log?others=1").get_data(as_text=True)  # type: ignore[attr-defined]
    assert others.count('data-action="read"') == 1 and 'data-action="redeemed"' in others


def test_an_unexpected_failure_shows_a_page_not_a_stack_trace(wallet: FakeWallet, identity: FakeIdentity) -> None:
    client = signed_in(wallet, identity)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database password is hunter2")

    wallet.list_documents = broken  # type: ignore[method-assign]
    answer = client.get("/wallet/")  # type: ignore[attr-defined]
    text = answer.get_data(as_text=True)
    assert answer.status_code == 500 and "Đã có lỗi xảy ra" in text
    assert "hunter2" not in text and "Traceback" not in text
