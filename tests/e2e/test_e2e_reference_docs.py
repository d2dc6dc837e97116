"""The integrators' reference in a browser: every service, RPC, message and enum of the contracts (as the
generated stubs know them) is on its page, the worked callback example recomputes, an error the live service
answers with is listed, and the sandbox guide names the sandbox's own test citizens."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import grpc
import pytest
import requests
from dvc.diagnostics.v1 import echo_pb2
from dvc.identity.v1 import identity_pb2
from dvc.payments.v1 import payments_pb2 as paypb
from dvc.wallet.v1 import wallet_pb2
from e2e_checks import accessibility_problems, overflows_sideways
from e2e_stack import PROVINCE_CLIENT, Platform, screenshot
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from playwright.sync_api import BrowserContext, expect

from servicekit.testing import bearer

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def names_in(module_descriptor: FileDescriptor) -> list[str]:
    """Every element id the API page must carry, from the stubs protoc generated (not from the reference)."""
    found = []

    def message(descriptor: Descriptor) -> None:
        found.append(descriptor.full_name)
        found.extend(f"{descriptor.full_name}.{field.name}" for field in descriptor.fields)
        for nested in descriptor.nested_types:
            if not nested.GetOptions().map_entry:
                message(nested)
        for enum in descriptor.enum_types:
            found.append(enum.full_name)

    for service in module_descriptor.services_by_name.values():
        found.append(service.full_name)
        found.extend(f"{service.full_name}.{method.name}" for method in service.methods)
    for descriptor in module_descriptor.message_types_by_name.values():
        message(descriptor)
    for enum in module_descriptor.enum_types_by_name.values():
        found.append(enum.full_name)
        found.extend(f"{enum.full_name}.{value.name}" for value in enum.values)
    return found


def live_reason(platform: Platform) -> str:
    """The reason the payment service gives for a payment that does not exist."""
    token = platform.client_token(PROVINCE_CLIENT, "dvc-payments")
    with pytest.raises(grpc.RpcError) as failed:
        platform.payment_stub.GetPayment(paypb.GetPaymentRequest(payment_id="no-such-payment"),
                                         metadata=bearer(token), timeout=10)
    status = rpc_status.from_call(failed.value)  # type: ignore[arg-type]
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    next(detail for detail in status.details if detail.Is(info.DESCRIPTOR)).Unpack(info)
    return str(info.reason)


def test_the_reference_documents_every_contract_element_and_recomputes(
        platform: Platform, new_browser: Callable[..., BrowserContext]) -> None:
    page = new_browser().new_page()
    page.goto(f"{platform.payment_url}/docs/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Tài liệu tích hợp")
    assert accessibility_problems(page) == []
    screenshot(page, "docs-01-index")

    for slug, module in (("api-payments", paypb), ("api-wallet", wallet_pb2), ("api-identity", identity_pb2),
                         ("api-diagnostics", echo_pb2)):
        page.goto(f"{platform.payment_url}/docs/{slug}.html")
        ids = set(page.evaluate("() => Array.from(document.querySelectorAll('[id]')).map(e => e.id)"))
        missing = [name for name in names_in(module.DESCRIPTOR) if name not in ids]
        assert missing == [], f"{slug} lacks {missing[:5]}"
        assert not overflows_sideways(page)
    page.goto(f"{platform.payment_url}/docs/api-payments.html#dvc.payments.v1.PaymentService.CreatePayment")
    expect(page.locator("[id='dvc.payments.v1.PaymentService.CreatePayment']")).to_contain_text("idempotent")
    screenshot(page, "docs-02-api-payments", full_page=False)

    # The worked example: recompute the HMAC from the body and secret the page shows.
    page.goto(f"{platform.payment_url}/docs/callbacks.html")
    body = page.locator("#example-body").inner_text()
    secret = page.locator("dl.facts dd").nth(0).inner_text()
    timestamp = page.locator("dl.facts dd").nth(1).inner_text()
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body.encode(), hashlib.sha256).hexdigest()
    expect(page.locator("#example-mac")).to_have_text(mac)
    expect(page.locator("#example-header")).to_have_text(f"X-DVC-Signature: t={timestamp},v1={mac}")
    assert not overflows_sideways(page)
    screenshot(page, "docs-03-callbacks")

    page.goto(f"{platform.payment_url}/docs/errors.html")
    expect(page.locator(f"[id='{live_reason(platform)}']")).to_contain_text("NOT_FOUND")
    screenshot(page, "docs-04-errors", full_page=False)

    page.goto(f"{platform.payment_url}/docs/guide-bank-connection-standard.html")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Portal connection standard for banks")
    expect(page.locator("main table").first).to_be_visible()
    screenshot(page, "docs-05-bank-standard", full_page=False)

    page.goto(f"{platform.payment_url}/docs/sandbox.html")
    accounts = requests.get(f"{platform.vneid.url}/accounts.json", timeout=10).json()["accounts"]
    citizens = page.locator("#citizens + p + div table")
    for account in accounts:
        expect(citizens).to_contain_text(account["national_id"])
    expect(page.locator("main")).to_contain_text("settlement_mismatch")
    screenshot(page, "docs-06-sandbox")

    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sandbox guide")
    page.set_viewport_size({"width": 390, "height": 844})
    assert not overflows_sideways(page)
    screenshot(page, "docs-07-sandbox-phone-english", full_page=False)
