"""A citizen in a real browser: logs in through the sandbox VNeID, sees the document an agency issued, downloads
it, shares it for a dossier, sees the receiving agency's redemption in the access log, revokes the share, uploads
a scan, switches to English and logs out."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable

import grpc
import pytest
from e2e_checks import accessibility_problems, overflows_sideways, skip_link_works
from e2e_stack import CITIZEN, RECEIVER_AGENCY, Platform, log_in, screenshot
from playwright.sync_api import BrowserContext, expect

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DOSSIER = "000.00.31.H29-260302-0107"
PROCEDURE = "1.001612"


def tiny_png() -> bytes:
    """A valid 1×1 white PNG, written out by hand so the wallet's content sniffing sees a real image."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff")) + \
        chunk(b"IEND", b"")


def test_a_citizen_shares_an_issued_document_and_sees_the_agency_take_it(
        platform: Platform, new_browser: Callable[..., BrowserContext]) -> None:
    issued, content = platform.issue_birth_certificate(CITIZEN)
    browser = new_browser()
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(f"{platform.wallet_url}/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Giấy tờ của bạn")
    assert skip_link_works(page)
    screenshot(page, "wallet-01-landing")
    log_in(page, platform, CITIZEN)

    # The session cookie: HttpOnly, SameSite=Lax, Secure except on this plain-http loopback test server.
    cookie = next(item for item in browser.cookies() if item["name"] in ("dvc_session", "__Host-dvc_session"))
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert cookie["name"] == "dvc_session" and not cookie["secure"]

    # The documents page: the issued birth certificate with its issuer and trust level (the list reads no
    # content; the document's own page verifies it).
    row = page.locator("tbody tr", has=page.get_by_role("link", name="Giấy khai sinh"))
    expect(row).to_contain_text("STP-HCM")
    expect(row).to_contain_text("Do cơ quan cấp và ký số")
    expect(row).to_contain_text("không thời hạn")
    expect(page.locator("header .who")).to_contain_text(CITIZEN[1])
    assert accessibility_problems(page) == []
    screenshot(page, "wallet-02-documents")

    # One document: its details and the verification, then the download is the very bytes the agency issued.
    row.get_by_role("link", name="Giấy khai sinh").click()
    expect(page).to_have_url(f"{platform.wallet_url}/wallet/documents/{issued.document_id}")
    expect(page.locator("dl.facts")).to_contain_text(issued.content_sha256)
    expect(page.get_by_role("status").first).to_contain_text("Đã xác minh chữ ký và nội dung")
    expect(page.locator("table")).to_contain_text("112/1985")
    with page.expect_download() as download:
        page.get_by_role("link", name="Tải về").click()
    assert download.value.suggested_filename.endswith(".pdf")
    assert open(download.value.path(), "rb").read() == content
    screenshot(page, "wallet-03-document")

    # Share it with Ha Noi's receiving office for a dossier.
    page.get_by_role("link", name="Chia sẻ cho hồ sơ").click()
    expect(page.get_by_label("Giấy khai sinh")).to_be_checked()
    page.get_by_label("Mã cơ quan tiếp nhận").fill(RECEIVER_AGENCY)
    page.get_by_label("Mã hồ sơ").fill(DOSSIER)
    page.get_by_label("Mã thủ tục hành chính").fill(PROCEDURE)
    page.get_by_label("Mục đích").fill("Cấp bản sao trích lục khai sinh")
    page.get_by_label("Không giới hạn cho đến khi hết hạn chia sẻ").check()  # still active after the agency's use
    assert accessibility_problems(page) == []
    screenshot(page, "wallet-04-share-form")
    page.get_by_role("button", name="Đồng ý chia sẻ").click()
    expect(page.get_by_role("status")).to_contain_text("Đã chia sẻ")
    share_id = page.locator("#share-code").inner_text().strip()
    expect(page.locator("dl.facts")).to_contain_text("Đang hiệu lực")
    screenshot(page, "wallet-05-share-granted")

    # The receiving agency's system redeems the share over gRPC and gets the document.
    redeemed = platform.redeem(share_id)
    documents = [item.document for item in redeemed if item.WhichOneof("item") == "document"]
    assert [item.document.document_id for item in documents] == [issued.document_id]

    # ... and the citizen sees who took it, when and why.
    page.get_by_role("link", name="Ai đã truy cập dữ liệu của tôi").click()
    redemption = page.locator('tr[data-action="redeemed"]').first
    expect(redemption).to_contain_text(f"hệ thống của {RECEIVER_AGENCY}")
    expect(redemption).to_contain_text(f"Hồ sơ {DOSSIER}")
    expect(redemption).to_contain_text("Nhận giấy tờ của bạn qua chia sẻ")
    expect(page.locator(".notice.ok")).to_contain_text("Nhật ký nguyên vẹn")
    page.get_by_role("link", name="Chỉ hiện thao tác của người khác").click()
    expect(page.locator('tr[data-action="redeemed"]').first).to_be_visible()
    expect(page.locator('tr[data-action="shared"]')).to_have_count(0)  # the citizen's own act is filtered out
    screenshot(page, "wallet-06-access-log")

    # Revoke the share: the agency can no longer take the documents.
    page.goto(f"{platform.wallet_url}/wallet/shares/{share_id}")
    page.get_by_role("button", name="Thu hồi chia sẻ").click()
    expect(page.get_by_role("status")).to_contain_text("Đã thu hồi chia sẻ")
    expect(page.locator("dl.facts")).to_contain_text("Đã thu hồi")
    screenshot(page, "wallet-07-share-revoked")
    with pytest.raises(grpc.RpcError) as refused:
        platform.redeem(share_id)
    assert refused.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED)
    page.goto(f"{platform.wallet_url}/wallet/shares")
    expect(page.get_by_text(share_id)).to_have_count(0)  # the active list no longer shows it
    page.get_by_role("link", name="Hiện cả chia sẻ đã hết hạn, đã thu hồi và đã dùng hết").click()
    expect(page.locator("tbody tr", has=page.get_by_text(share_id))).to_contain_text("Đã thu hồi")
    screenshot(page, "wallet-08-shares")

    # Upload a scan of one's own: stored, and marked as not vouched for by any agency.
    page.get_by_role("link", name="Tải lên bản chụp").first.click()
    page.get_by_label("Tệp").set_input_files(files=[{"name": "cccd.png", "mimeType": "image/png",
                                                      "buffer": tiny_png()}])
    page.get_by_label("Tên giấy tờ").fill("Ảnh chụp căn cước")
    assert accessibility_problems(page) == []
    screenshot(page, "wallet-09-upload")
    page.get_by_role("button", name="Tải lên").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ảnh chụp căn cước")
    expect(page.locator("dl.facts")).to_contain_text("Bạn tự tải lên (chưa được xác thực)")
    expect(page.locator(".notice").nth(1)).to_contain_text("Nội dung nguyên vẹn, không có chữ ký")

    # English on request, and a phone-sized screen without sideways scrolling.
    page.get_by_role("navigation", name="Ngôn ngữ").get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ảnh chụp căn cước")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.get_by_role("navigation", name="Wallet").get_by_role("link", name="My documents").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("My documents")
    expect(page.locator("tbody")).to_contain_text("Issued and signed by the agency")
    screenshot(page, "wallet-10-documents-english")
    page.set_viewport_size({"width": 390, "height": 844})
    assert not overflows_sideways(page)
    screenshot(page, "wallet-11-documents-phone")
    page.goto(f"{platform.wallet_url}/wallet/access-log")
    assert not overflows_sideways(page)
    screenshot(page, "wallet-12-access-log-phone")

    # Log out: the session ends here and at identity; the wallet pages ask for a login again.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("status")).to_contain_text("You have logged out.")
    assert not any(item["name"].endswith("dvc_session") for item in browser.cookies())
    page.goto(f"{platform.wallet_url}/wallet/")
    expect(page).to_have_url(re.compile(re.escape(platform.vneid.url) + "/authorize"))
