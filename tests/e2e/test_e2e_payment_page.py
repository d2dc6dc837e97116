"""A payer in a real browser: opens the payment page a provincial system created, sees what they pay and how to
transfer it, pays through the sandbox bank in another tab, and watches the page — never reloaded — turn to paid
with its e-receipt; failed and expired payments show themselves the same way."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import timedelta

import pytest
import zxingcpp
from dvc.payments.v1 import payments_pb2 as paypb
from e2e_checks import accessibility_problems, overflows_sideways, skip_link_works
from e2e_stack import CITIZEN, PROVINCE_CLIENT, Platform, log_in, screenshot
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect

from servicekit.testing import bearer

pytestmark = [pytest.mark.integration, pytest.mark.browser]

AGENCY_NAME = "UBND TP. Hồ Chí Minh - Cổng DVC"   # the demo agency HCM of the payment service's seed


def open_bank(browser: BrowserContext, page: Page, platform: Platform) -> Page:
    """Follow the page's Internet Banking link in a second tab: the platform sends the payer to the bank."""
    link = page.get_by_role("link", name="Thanh toán qua Internet Banking")
    bank = browser.new_page()
    bank.goto(f"{platform.payment_url}{link.get_attribute('href')}")
    expect(bank).to_have_url(re.compile(re.escape(platform.sandboxes.servers["vietcombank"].url) + "/sandbox/pay/"))
    return bank


def test_a_payer_pays_through_the_sandbox_bank_and_the_open_page_turns_paid(
        platform: Platform, new_browser: Callable[..., BrowserContext]) -> None:
    payment = platform.create_payment([(paypb.FEE_KIND_PHI, "Phí cấp bản sao", 50_000),
                                       (paypb.FEE_KIND_LE_PHI, "Lệ phí hộ tịch", 135_000)],
                                      dossier="000.00.31.H29-260302-0201")
    browser = new_browser()
    page = browser.new_page()
    page.goto(f"{platform.payment_url}/pay/{payment.reference}")

    expect(page.get_by_role("heading", level=1)).to_have_text("Phí, lệ phí của hồ sơ 000.00.31.H29-260302-0201")
    expect(page.locator("#payment-status")).to_have_text("Chờ thanh toán")
    fees = page.locator("#fee-lines")
    expect(fees.locator("tbody tr").nth(0)).to_contain_text("Phí cấp bản sao")
    expect(fees.locator("tbody tr").nth(0)).to_contain_text("50.000 đồng")
    expect(fees.locator("tbody tr").nth(1)).to_contain_text("Lệ phí hộ tịch")
    expect(page.locator("#total")).to_have_text("185.000 đồng")
    expect(page.locator("main")).to_contain_text(AGENCY_NAME)
    # What to type into a banking app by hand: Agribank (BIN 970405), the treasury account, amount, note.
    transfer = page.locator("#transfer-details")
    expect(transfer).to_contain_text("Agribank")
    expect(transfer).to_contain_text("7111000000001")
    expect(transfer).to_contain_text("185.000 đồng")
    note = transfer.locator("dd").nth(4).inner_text()
    assert note.startswith(payment.reference)
    # The payer's national ID is never shown in full to whoever holds the payment code.
    expect(page.locator("main")).to_contain_text("••••••••" + CITIZEN[0][-4:])
    assert CITIZEN[0] not in page.content()
    # The QR image is there and encodes the same transfer (decoded independently with zxing).
    assert page.evaluate("() => document.querySelector('.qr img').naturalWidth") > 0
    image = page.request.get(f"{platform.payment_url}/pay/{payment.reference}/qr.png").body()
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(image)))[0].text
    assert "7111000000001" in decoded and "5406185000" in decoded and payment.reference in decoded
    channels = page.locator(".channels a")
    expect(channels).to_have_text(["Thanh toán qua Internet Banking", "Thanh toán bằng ví điện tử",
                                   "Thanh toán bằng thẻ hoặc cổng thanh toán"])
    assert accessibility_problems(page) == []
    assert skip_link_works(page)
    screenshot(page, "pay-01-open")
    page.set_viewport_size({"width": 390, "height": 844})
    assert not overflows_sideways(page)
    screenshot(page, "pay-02-open-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # The payer pays at the sandbox bank in another tab; the first tab is left alone, never reloaded.
    page.evaluate("() => { window.notReloaded = true; }")
    bank = open_bank(browser, page, platform)
    expect(bank.locator("body")).to_contain_text("185,000")
    screenshot(bank, "pay-03-sandbox-bank")
    bank.get_by_role("button", name="Thanh toán / Pay").click()

    expect(page.locator("#payment-status")).to_have_text("Đã thanh toán", timeout=20_000)
    assert page.evaluate("() => window.notReloaded") is True
    receipt = page.locator("#receipt")
    expect(receipt).to_contain_text("Biên lai điện tử")
    expect(receipt.locator("dd").nth(0)).to_have_text(re.compile(r"^BL\d{8}" + payment.reference + "$"))
    expect(receipt).to_contain_text("185.000 đồng")
    expect(page.locator("#status-announcer")).to_have_text("Trạng thái thanh toán: Đã thanh toán")
    expect(page.locator("#transfer-details")).to_have_count(0)   # nothing left to pay
    screenshot(page, "pay-04-paid-receipt")

    # The bank sends the payer back to the same page, paid; the service agrees.
    bank.get_by_role("link", name=re.compile("Quay lại")).click()
    expect(bank).to_have_url(f"{platform.payment_url}/pay/{payment.reference}")
    expect(bank.locator("#payment-status")).to_have_text("Đã thanh toán")
    token = platform.client_token(PROVINCE_CLIENT, "dvc-payments")
    paid = platform.payment_stub.GetPayment(paypb.GetPaymentRequest(payment_id=payment.id),
                                            metadata=bearer(token), timeout=10).payment
    assert paid.status == paypb.PAYMENT_STATUS_SUCCEEDED and paid.paid_amount == 185_000
    page.get_by_role("link", name="English").click()
    expect(page.locator("#payment-status")).to_have_text("Paid")
    expect(page.locator("#total")).to_have_text("185,000 VND")
    screenshot(page, "pay-05-paid-english")

    # The signed e-receipt also reaches the payer's wallet, issued there by the payment platform.
    wallet = browser.new_page()
    wallet.goto(f"{platform.wallet_url}/lang/vi?next=/")   # the English chosen above holds for the whole host
    log_in(wallet, platform, CITIZEN)
    receipt_row = wallet.locator("tbody tr", has=wallet.get_by_role("link", name="Biên lai điện tử thu phí, lệ phí"))
    for _ in range(40):   # delivered by the payment service's outbox a moment after the payment succeeded
        if receipt_row.count():
            break
        wallet.wait_for_timeout(250)
        wallet.reload()
    expect(receipt_row).to_contain_text("DVC-PAYMENTS")
    receipt_row.get_by_role("link").click()
    expect(wallet.get_by_role("status").first).to_contain_text("Đã xác minh chữ ký và nội dung")
    expect(wallet.locator("table")).to_contain_text("BL20")
    expect(wallet.locator("table")).to_contain_text(payment.reference)
    screenshot(wallet, "pay-06-receipt-in-wallet")


def test_the_open_page_shows_a_failed_and_an_expired_payment_by_itself(
        platform: Platform, new_browser: Callable[..., BrowserContext]) -> None:
    # Amounts ending in 13 fail at the sandbox bank (docs/sandboxes.md, magic amounts).
    failing = platform.create_payment([(paypb.FEE_KIND_LE_PHI, "Lệ phí", 185_013)], dossier="HS-FAIL-0001")
    expiring = platform.create_payment([(paypb.FEE_KIND_LE_PHI, "Lệ phí", 120_000)], dossier="HS-EXPIRE-0001",
                                       expires_in=timedelta(seconds=61))
    browser = new_browser()
    failed_page = browser.new_page()
    failed_page.goto(f"{platform.payment_url}/pay/{failing.reference}")
    expired_page = browser.new_page()
    expired_page.goto(f"{platform.payment_url}/pay/{expiring.reference}")
    expect(expired_page.locator("#payment-status")).to_have_text("Chờ thanh toán")

    bank = open_bank(browser, failed_page, platform)
    bank.get_by_role("button", name="Thanh toán / Pay").click()
    expect(failed_page.locator("#payment-status")).to_have_text("Thanh toán không thành công", timeout=20_000)
    expect(failed_page.locator(".notice.bad")).to_contain_text(AGENCY_NAME)
    expect(failed_page.get_by_role("link", name="Thanh toán qua Internet Banking")).to_have_count(0)
    screenshot(failed_page, "pay-07-failed")

    # Two minutes pass for the payment service: its expiry job closes the unpaid payment.
    platform.payment_clock.offset += timedelta(minutes=2)
    expect(expired_page.locator("#payment-status")).to_have_text("Hết hạn: không thanh toán kịp", timeout=20_000)
    expect(expired_page.locator(".qr")).to_have_count(0)
    screenshot(expired_page, "pay-08-expired")
