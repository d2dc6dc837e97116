"""The collecting bank of VietQR transfers (NAPAS 247): the payer transfers (or scans a VietQR), the bank sends a
signed ACCOUNT_CREDITED notice (portal standard signing), lists credits and serves the signed account statement."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request

from payment_service.adapters.connectors import vietqr_transfer
from payment_service.domain.connector import ConnectorStatus as Status
from payment_service.domain.vietqr import parse_payload
from payment_service.sandbox import catalog
from payment_service.sandbox.common import (
    Action,
    Attempt,
    Delivery,
    Sandbox,
    SandboxPayment,
    SandboxSettings,
    create_sandbox_app,
    json_response,
    page,
    parse_day,
)
from payment_service.sandbox.portal_bank import PortalBankSide
from servicekit.errors import InvalidArgument

PAGE_SIZE = 100
_REFERENCE_START = re.compile(r"DVC", re.IGNORECASE)


def delivered_note(note: str, magic: str) -> str:
    """The note as the payer's bank passes it on: unchanged, or damaged the way magic 61-63 asks."""
    if magic == "note_missing":
        return ""
    match = _REFERENCE_START.search(note)
    if magic == "note_truncated":
        return note[:match.start() + 9] if match else note[:10]
    if magic == "note_garbled" and match:
        # What real bank apps do: prefix their own codes, lowercase, split long tokens, restore diacritics.
        reference = note[match.start():match.start() + 16]
        spaced = " ".join(reference[i:i + 4] for i in range(0, len(reference), 4)).lower()
        rest = note[match.start() + 16:].lower().replace("thanh toan", "thanh toán").replace("le phi", "lệ phí")
        return f"MBVCB.3278612345.{spaced}{rest}.CT tu 0011004567890 NGUYEN VAN A"
    return note


class NapasProtocol:
    """Credits to the agencies' accounts at the collecting bank."""

    name = "vietqr"

    def __init__(self, side: PortalBankSide) -> None:
        self.side = side

    def notice(self, sandbox: Sandbox, payment: SandboxPayment, attempt: Attempt, *, forged: bool) -> Delivery | None:
        if attempt.status is not Status.SUCCEEDED:
            return None  # a failed NAPAS transfer credits nothing, so the bank has nothing to say
        payload = {
            "notification_id": f"{self.name}-{payment.reference}", "type": "ACCOUNT_CREDITED",
            "account": {"bin": payment.data["account_bin"], "number": payment.data["account_number"]},
            "amount": attempt.amount, "transfer_note": payment.data["delivered_note"],
            "bank_transaction_id": payment.reference, "credited_at": attempt.at.isoformat(),
        }
        return self.side.notification(sandbox.notify_url, payload, forged=forged,
                                      label=f"ACCOUNT_CREDITED{' forged' if forged else ''}")

    def return_url(self, sandbox: Sandbox, payment: SandboxPayment) -> str:
        return ""

    def transfer(self, sandbox: Sandbox, bank_bin: str, account: str, amount: int, note: str) -> SandboxPayment:
        transaction_id = sandbox.provider_reference("FT")
        payment, _ = sandbox.register(transaction_id, amount, account_bin=bank_bin, account_number=account, note=note)
        payment.data["delivered_note"] = delivered_note(note, payment.magic.name if payment.magic else "")
        return sandbox.complete(transaction_id, Action.PAY)

    def register(self, app: Flask, sandbox: Sandbox) -> None:
        side = self.side

        @app.post("/sandbox/transfers")
        def transfer() -> Response:
            body: dict[str, Any] = request.get_json(silent=True) or request.form.to_dict()
            given = body.get("account")
            account: dict[str, Any] = given if isinstance(given, dict) else {
                "bin": body.get("bin", ""), "number": body.get("number", "")}
            try:
                amount = int(body.get("amount", ""))
            except (TypeError, ValueError):
                return json_response({"error": "amount must be a whole number of đồng"}, 400)
            if amount <= 0 or not account.get("bin") or not account.get("number"):
                return json_response({"error": "account {bin, number} and a positive amount are required"}, 400)
            payment = self.transfer(sandbox, str(account["bin"]), str(account["number"]), amount,
                                    str(body.get("note", "")))
            return json_response(payment.view(), 201)

        @app.post("/sandbox/scan")
        def scan() -> Response:
            """The payer's banking app scans a VietQR code and transfers what it says (or ``amount``)."""
            body = request.get_json(silent=True) or {}
            try:
                code = parse_payload(str(body.get("qr", "")))
            except InvalidArgument as error:
                return json_response({"error": error.message}, 400)
            amount = int(body.get("amount") or code.amount or 0)
            if amount <= 0:
                return json_response({"error": "the code has no amount: send one"}, 400)
            note = str(body.get("note") or code.purpose or code.bill_number or "")
            payment = self.transfer(sandbox, code.bank_bin, code.account, amount, note)
            return json_response(payment.view(), 201)

        @app.get("/sandbox/transfer")
        def transfer_page() -> Response:
            fields = "".join(f'<p><label>{label} <input name="{name}"></label></p>' for name, label in (
                ("bin", "BIN"), ("number", "Số tài khoản / account"), ("amount", "Số tiền / amount"),
                ("note", "Nội dung / note")))
            return page("NAPAS 247 sandbox", f'<form method="post" action="/sandbox/transfers">{fields}'
                                             f'<button type="submit">Chuyển / Transfer</button></form>')

        @app.get(vietqr_transfer.CREDITS_PATH)
        @side.signed
        def credits() -> Response:
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            try:
                since = datetime.fromisoformat(request.args.get("since", "1970-01-01T00:00:00+00:00"))
                offset = int(request.args.get("cursor", "0") or 0)
            except ValueError:
                return side.error(400, "INVALID_REQUEST", "since is an ISO time and cursor a number")
            since = since if since.tzinfo else since.replace(tzinfo=UTC)
            rows = sorted((p for p in sandbox.book.all() if p.final and p.final.status is Status.SUCCEEDED
                           and p.final.at >= since), key=lambda p: (p.final.at if p.final else since, p.reference))
            chunk = rows[offset:offset + PAGE_SIZE]
            return side.answer({
                "credits": [self._credit(payment) for payment in chunk],
                "next_cursor": str(offset + PAGE_SIZE) if offset + PAGE_SIZE < len(rows) else ""})

        @app.get(f"{vietqr_transfer.STATEMENTS_PATH}/<day_text>")
        @side.signed
        def statement(day_text: str) -> Response:
            day = parse_day(day_text)
            if day is None:
                return side.error(400, "INVALID_REQUEST", "the day is YYYY-MM-DD")
            fault = sandbox.api_fault()
            if fault is not None:
                return fault
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow((*vietqr_transfer.STATEMENT_COLUMNS, "account_bin", "account_number"))
            for payment, _, amount in sandbox.settled(day):
                writer.writerow((payment.reference, amount, payment.data["delivered_note"], day.isoformat(),
                                 payment.data["account_bin"], payment.data["account_number"]))
            return side.answer(None, content=side.signer.sign_file(out.getvalue().encode()),
                               content_type="text/csv")

    @staticmethod
    def _credit(payment: SandboxPayment) -> dict[str, Any]:
        final = payment.final
        assert final is not None
        return {"bank_transaction_id": payment.reference, "amount": final.amount,
                "transfer_note": payment.data["delivered_note"], "credited_at": final.at.isoformat(),
                "account": {"bin": payment.data["account_bin"], "number": payment.data["account_number"]}}


def create_app(*, notify_url: str = f"{catalog.DEFAULT_NOTIFY_URL_BASE}/vietqr",
               settings: SandboxSettings | None = None, public_url: str = "",
               side: PortalBankSide | None = None) -> Flask:
    return create_sandbox_app(NapasProtocol(side or PortalBankSide(catalog.VIETQR_BANK.code)), notify_url=notify_url,
                              settings=settings, public_url=public_url)
