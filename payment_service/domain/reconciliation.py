"""Reconciliation (đối soát): match a connector's settlement lines against the ledger, pure and deterministic."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date

from payment_service.domain.connector import ConnectorStatus, SettlementLine
from payment_service.domain.model import PAID_STATUSES, PaymentStatus

# A payment confirmed just before midnight may settle the next day: dates one day apart still match.
DATE_TOLERANCE_DAYS = 1


class MatchStatus(enum.Enum):
    """The verdict on one transaction."""

    MATCHED = "matched"
    MISSING_IN_LEDGER = "missing_in_ledger"
    MISSING_AT_BANK = "missing_at_bank"
    AMOUNT_MISMATCH = "amount_mismatch"
    STATUS_MISMATCH = "status_mismatch"


@dataclass(frozen=True)
class LedgerEntry:
    """What the platform recorded for one payment."""

    payment_id: str
    agency_code: str
    reference: str
    amount: int
    status: PaymentStatus
    paid_on: date | None
    paid_amount: int = 0


@dataclass(frozen=True)
class ReconciliationItem:
    """One line of the report."""

    status: MatchStatus
    reference: str
    agency_code: str = ""
    payment_id: str = ""
    ledger_amount: int | None = None
    bank_amount: int | None = None
    ledger_status: str = ""
    bank_status: str = ""
    provider_reference: str = ""
    settled_on: date | None = None
    note: str = ""


def _compare(line: SettlementLine, entry: LedgerEntry) -> tuple[MatchStatus, str]:
    ledger_paid = entry.status in PAID_STATUSES or entry.paid_amount > 0
    bank_paid = line.status is ConnectorStatus.SUCCEEDED
    if ledger_paid != bank_paid:
        return MatchStatus.STATUS_MISMATCH, f"bank says {line.status.value}, ledger says {entry.status.value}"
    expected = entry.paid_amount if entry.paid_amount else entry.amount
    if bank_paid and line.amount != expected:
        return MatchStatus.AMOUNT_MISMATCH, f"bank settled {line.amount} đồng, ledger has {expected}"
    if bank_paid and entry.paid_on is not None and abs((line.settled_on - entry.paid_on).days) > DATE_TOLERANCE_DAYS:
        return MatchStatus.STATUS_MISMATCH, (f"settled on {line.settled_on.isoformat()} but paid on "
                                             f"{entry.paid_on.isoformat()}")
    return MatchStatus.MATCHED, ""


def _per_payment(lines: Iterable[SettlementLine], ledger: Mapping[str, LedgerEntry]) -> list[SettlementLine]:
    """The lines with the succeeded transfers of one known payment summed into one line: a VietQR payment paid
    in parts has a line per transfer, and only their total can match what the ledger says was paid. (Parts
    settled on different days are in different files and still show as amount mismatches.)"""
    totals: dict[str, SettlementLine] = {}
    order: list[str | SettlementLine] = []
    for line in lines:
        if line.reference not in ledger or line.status is not ConnectorStatus.SUCCEEDED:
            order.append(line)
            continue
        earlier = totals.get(line.reference)
        if earlier is None:
            order.append(line.reference)
            totals[line.reference] = line
        else:
            totals[line.reference] = replace(earlier, amount=earlier.amount + line.amount,
                                             settled_on=max(earlier.settled_on, line.settled_on))
    return [totals[item] if isinstance(item, str) else item for item in order]


def reconcile(lines: Iterable[SettlementLine], ledger: Mapping[str, LedgerEntry],
              paid_in_period: Iterable[LedgerEntry]) -> list[ReconciliationItem]:
    """Match each settlement line by reference (then amount, status and date); every payment the ledger shows
    as paid through this connector in the period but absent from the file is missing at the bank."""
    items: list[ReconciliationItem] = []
    seen: set[str] = set()
    for line in _per_payment(lines, ledger):
        seen.add(line.reference)
        entry = ledger.get(line.reference)
        if entry is None:
            items.append(ReconciliationItem(MatchStatus.MISSING_IN_LEDGER, line.reference, bank_amount=line.amount,
                                            bank_status=line.status.value, provider_reference=line.provider_reference,
                                            settled_on=line.settled_on, note="no payment with this reference"))
            continue
        verdict, note = _compare(line, entry)
        items.append(ReconciliationItem(verdict, line.reference, entry.agency_code, entry.payment_id, entry.amount,
                                        line.amount, entry.status.value, line.status.value, line.provider_reference,
                                        line.settled_on, note))
    for entry in paid_in_period:
        if entry.reference not in seen:
            items.append(ReconciliationItem(MatchStatus.MISSING_AT_BANK, entry.reference, entry.agency_code,
                                            entry.payment_id, entry.amount, None, entry.status.value, "",
                                            note="paid in the ledger, absent from the settlement file"))
    return items
