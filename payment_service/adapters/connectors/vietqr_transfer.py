"""VietQR transfers over NAPAS 247: the collecting bank's signed "account credited" notices (portal standard signing),
parsed with the payment reference recovered from whatever the payer's bank left of the transfer note."""

from __future__ import annotations

import csv
import io
import unicodedata
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import requests

from payment_service.adapters.connectors.base import (
    Clock,
    ConfigEntry,
    ConnectorBase,
    protocol_error,
    to_dong,
    utc_now,
)
from payment_service.adapters.connectors.portal_standard import (
    NonceStore,
    PortalClient,
    parse_time,
    portal_reply,
    portal_scrubber,
)
from payment_service.domain import reference as references
from payment_service.domain.connector import (
    CallbackOutcome,
    CallbackReply,
    CallbackRequest,
    ConnectorError,
    ConnectorErrorKind,
    ConnectorInfo,
    ConnectorResult,
    ConnectorStatus,
    Credit,
    InboundNotification,
    NotificationKind,
    PaymentOrder,
    RefundResult,
    SettlementLine,
)

CREDITS_PATH = "/v1/account-credits"
STATEMENTS_PATH = "/v1/statements"
MAX_CREDIT_PAGES = 10
STATEMENT_COLUMNS = ("bank_transaction_id", "amount", "transfer_note", "credited_on")

# Crockford base-32 reading rules: a payer or bank app that turns 0 into O or 1 into I/L still means the same
# character. U is not folded: "DUC" (Đức, a common name) must never be read as our "DVC" prefix.
_CROCKFORD_FOLDS = str.maketrans({"O": "0", "I": "1", "L": "1"})
_LETTER_FOLDS = str.maketrans({"Đ": "D", "đ": "d"})


def _compact(note: str) -> str:
    """Upper-case ASCII letters and digits only: diacritics and Đ folded, full-width forms normalised, spaces and
    punctuation (which banks insert, drop or replace) removed."""
    decomposed = unicodedata.normalize("NFKD", note.translate(_LETTER_FOLDS))
    return "".join(character for character in decomposed.upper()
                    if character.isascii() and character.isalnum())


def _candidates(compact: str, fold: bool) -> set[str]:
    found = set()
    start = compact.find(references.PREFIX)
    while start != -1:
        candidate = compact[start:start + references.LENGTH]
        if fold:
            candidate = references.PREFIX + candidate[len(references.PREFIX):].translate(_CROCKFORD_FOLDS)
        if len(candidate) == references.LENGTH and references.is_valid(candidate):
            found.add(candidate)
        start = compact.find(references.PREFIX, start + 1)
    return found


def extract_reference(note: str) -> str:
    """The payment reference in a transfer note, or '' when there is none we can trust: missing, truncated, a
    character changed (the check character fails) or two different references (ambiguous). Robust to case,
    spaces, punctuation, diacritics, bank prefixes and suffixes, and Crockford look-alikes (O/0, I/L/1)."""
    compact = _compact(note)
    found = _candidates(compact, fold=False) or _candidates(compact, fold=True)
    return found.pop() if len(found) == 1 else ""


class VietQrTransferConnector(ConnectorBase):
    """The collecting bank of the agencies' beneficiary accounts, reporting NAPAS 247 credits."""

    creates_without_calling = True   # the payer scans the VietQR the platform already drew

    def __init__(self, code: str, config: ConfigEntry, *, clock: Clock = utc_now,
                 session: requests.Session | None = None, nonces: NonceStore | None = None) -> None:
        info = ConnectorInfo(code=code, display_name=config.text("display_name", "VietQR (NAPAS 247)"),
                             channel="vietqr", supports_refund=False,
                             extra={"standard": "DVC-PORTAL-1", "bank_bin": config.text("bank_bin", "")})
        super().__init__(info, config, portal_scrubber([]), clock=clock, session=session)
        self.portal = PortalClient(self, config, nonces)
        self.scrubber.add_secrets(*self.portal.secrets)

    def create(self, order: PaymentOrder) -> ConnectorResult:
        """Nothing to register: the payer transfers to the beneficiary account shown in the VietQR code."""
        return ConnectorResult(ConnectorStatus.PENDING, message="waiting for a NAPAS 247 transfer")

    def _credits(self, since: datetime) -> list[dict[str, Any]]:
        credits: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(MAX_CREDIT_PAGES):
            query = {"since": since.isoformat(), **({"cursor": cursor} if cursor else {})}
            status, answer = self.portal.call_json("credits", "GET", f"{CREDITS_PATH}?{urlencode(query)}")
            if status != 200:
                raise self.portal.error("credits", status, answer)
            page = answer.get("credits")
            if not isinstance(page, list):
                raise protocol_error("credits: answer has no credits list")
            credits.extend(item for item in page if isinstance(item, dict))
            cursor = str(answer.get("next_cursor") or "")
            if not cursor:
                return credits
        # More credits than we read: the one we look for may be among the rest, so "not paid" cannot be said. The
        # bank answered, so this is a refusal, not an outage: it must not open the circuit for every payer.
        raise ConnectorError(ConnectorErrorKind.REJECTED,
                             f"credits: more than {MAX_CREDIT_PAGES} pages since the payment was created")

    def query_status(self, reference: str, *, amount: int, created_at: datetime,
                     provider_reference: str = "") -> ConnectorResult:
        """Sum the credits since the payment was created whose note carries its reference: none or less than the
        amount is still PENDING (a partial payment stays open), enough is SUCCEEDED with what was credited."""
        matched = [item for item in self._credits(created_at)
                   if extract_reference(str(item.get("transfer_note", ""))) == reference]
        if not matched:
            return ConnectorResult(ConnectorStatus.PENDING, message="no transfer with this reference yet")
        credits = tuple(Credit(str(item.get("bank_transaction_id", "")),
                               to_dong(item.get("amount", ""), what="credit amount"), _account(item))
                        for item in matched)
        total = sum(credit.amount for credit in credits)
        times = [moment for moment in (parse_time(item.get("credited_at")) for item in matched) if moment]
        status = ConnectorStatus.SUCCEEDED if total >= amount else ConnectorStatus.PENDING
        return ConnectorResult(status, provider_reference=credits[-1].provider_reference, amount=total,
                               paid_at=max(times) if times and status is ConnectorStatus.SUCCEEDED else None,
                               message="" if status is ConnectorStatus.SUCCEEDED else "partially paid",
                               credits=credits)

    def refund(self, reference: str, provider_reference: str, amount: int, refund_id: str, *,
               created_at: datetime | None = None) -> RefundResult:
        return RefundResult(accepted=False, provider_code="UNSUPPORTED",
                            message="a VietQR transfer is refunded by a transfer back from the beneficiary account")

    def fetch_settlement(self, day: date) -> list[SettlementLine]:
        return self._statement(self.portal.fetch_signed_file(f"{STATEMENTS_PATH}/{day.isoformat()}"))

    def parse_settlement(self, content: bytes) -> list[SettlementLine]:
        return self._statement(self.portal.verify_file(content))

    def _statement(self, content: bytes) -> list[SettlementLine]:
        """The account statement: every credit of the day, with the reference recovered from its note ('' when
        unreadable, which reconciliation reports as missing in the ledger)."""
        rows = [line for line in content.decode("utf-8-sig", "replace").splitlines()
                if line.strip() and not line.startswith("#")]
        reader = csv.DictReader(io.StringIO("\n".join(rows)))
        if any(column not in (reader.fieldnames or []) for column in STATEMENT_COLUMNS):
            raise protocol_error(f"statement needs columns {', '.join(STATEMENT_COLUMNS)}")
        lines = []
        for number, row in enumerate(reader, start=2):
            try:
                credited_on = date.fromisoformat(row["credited_on"].strip())
            except ValueError:
                raise protocol_error(f"statement line {number}: bad date") from None
            lines.append(SettlementLine(
                reference=extract_reference(row["transfer_note"]), provider_reference=row["bank_transaction_id"],
                amount=to_dong(row["amount"], what=f"statement line {number} amount"),
                status=ConnectorStatus.SUCCEEDED, settled_on=credited_on))
        return lines

    def parse_callback(self, request: CallbackRequest) -> InboundNotification:
        notice = self.portal.verified_notification(request)
        if notice.get("type") != "ACCOUNT_CREDITED" or not notice.get("bank_transaction_id"):
            raise protocol_error("not an ACCOUNT_CREDITED notice with a bank_transaction_id")
        note = str(notice.get("transfer_note") or "")
        return InboundNotification(
            kind=NotificationKind.ACCOUNT_CREDITED, reference=extract_reference(note),
            status=ConnectorStatus.SUCCEEDED, amount=to_dong(notice.get("amount", ""), what="amount"),
            provider_reference=str(notice["bank_transaction_id"]), notification_id=str(notice["notification_id"]),
            transfer_note=note, occurred_at=parse_time(notice.get("credited_at")), raw_code="ACCOUNT_CREDITED",
            credited_account=_account(notice))

    def reply(self, outcome: CallbackOutcome) -> CallbackReply:
        return portal_reply(outcome)


def _account(item: dict[str, Any]) -> str:
    """The credited account of a notice or credit as "bin/number" ('' when the bank leaves it out)."""
    account = item.get("account")
    if not isinstance(account, dict) or not account.get("number"):
        return ""
    return f"{account.get('bin', '')}/{account['number']}"
