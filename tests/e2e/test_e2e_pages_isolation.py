"""A citizen who changes an id in the address bar sees nothing of another citizen: not their document, its
content, their share, nor can they revoke that share with a valid form of their own; forms without this
session's CSRF token are refused."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest
from dvc.wallet.v1 import wallet_pb2 as walletpb
from e2e_stack import CITIZEN, OTHER_CITIZEN, Platform, log_in, screenshot
from playwright.sync_api import BrowserContext, Page, expect

from servicekit.testing import bearer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def other_citizens_share(platform: Platform, document_id: str) -> str:
    token = platform.citizen_token(OTHER_CITIZEN[0])
    share = platform.wallet_stub.CreateShare(walletpb.CreateShareRequest(
        document_ids=[document_id], agency_code="HN", dossier_code="HS-OTHER-0001", procedure_code="1.001612",
        purpose="Hồ sơ của người khác", max_uses=0, idempotency_key=uuid.uuid4().hex),
        metadata=bearer(token), timeout=10).share
    return str(share.share_id)


def other_share_status(platform: Platform, share_id: str) -> int:
    token = platform.citizen_token(OTHER_CITIZEN[0])
    shares = platform.wallet_stub.ListShares(walletpb.ListSharesRequest(include_inactive=True),
                                             metadata=bearer(token), timeout=10).shares
    return int(next(share.status for share in shares if share.share_id == share_id))


def assert_nothing_of_the_other(page: Page) -> None:
    body = page.locator("body").inner_text()
    assert OTHER_CITIZEN[1] not in body and OTHER_CITIZEN[0] not in body


def test_another_citizens_document_and_share_stay_invisible_when_the_id_is_typed_in(
        platform: Platform, new_browser: Callable[..., BrowserContext]) -> None:
    theirs, _ = platform.issue_birth_certificate(OTHER_CITIZEN)
    their_share = other_citizens_share(platform, theirs.document_id)
    page = new_browser().new_page()
    log_in(page, platform, CITIZEN)
    wallet = platform.wallet_url

    answer = page.goto(f"{wallet}/wallet/documents/{theirs.document_id}")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Không tìm thấy")
    assert_nothing_of_the_other(page)
    screenshot(page, "isolation-01-document-not-found")

    content = page.request.get(f"{wallet}/wallet/documents/{theirs.document_id}/content?download=1")
    assert content.status == 404 and b"%PDF" not in content.body()
    answer = page.goto(f"{wallet}/wallet/shares/{their_share}")
    assert answer is not None and answer.status == 404
    assert_nothing_of_the_other(page)

    # A revoke form for the other citizen's share, with this browser's own valid CSRF token.
    page.goto(f"{wallet}/wallet/shares")
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = page.request.post(f"{wallet}/wallet/shares/{their_share}/revoke", form={"csrf_token": token or ""})
    assert refused.status == 404
    assert other_share_status(platform, their_share) == walletpb.SHARE_STATUS_ACTIVE

    # Without the token (or with another), the form is refused before anything is looked at.
    for form in ({}, {"csrf_token": "forged-" + uuid.uuid4().hex}):
        answer = page.request.post(f"{wallet}/logout", form=form)
        assert answer.status == 400
    page.goto(f"{wallet}/wallet/")
    expect(page).to_have_url(f"{wallet}/wallet/")  # still logged in: the refused logout did nothing

    # A payment page only answers to a real payment code; a made-up one shows nothing.
    for code in ("DVC" + "0" * 13, "DVC7K2M9QX4TB1HZ", "dvc7k2m9qx4tb1h"):
        answer = page.goto(f"{platform.payment_url}/pay/{code}")
        assert answer is not None and answer.status == 404
        assert re.search(r"DVC\w{13}", page.locator("main").inner_text()) is None
        expect(page.get_by_role("heading", level=1)).to_have_text("Không tìm thấy khoản thanh toán")
    screenshot(page, "isolation-02-payment-not-found")
