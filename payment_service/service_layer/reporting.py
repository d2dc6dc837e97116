"""Reconciliation (đối soát) of settlement files and the daily payment statistics."""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta

from prometheus_client import Counter

from payment_service.domain.connector import ConnectorError, ConnectorResult, ConnectorStatus, SettlementLine
from payment_service.domain.model import PAID_STATUSES, EventSource
from payment_service.domain.reconciliation import MatchStatus, ReconciliationItem, reconcile
from payment_service.service_layer.access import SCOPE_READ, Caller
from payment_service.service_layer.ports import ReconciliationReport, StoredReconciliationItem
from payment_service.service_layer.services import (
    VIETNAM,
    PaymentServices,
    decode_offset,
    encode_token,
    page_size,
    query_status,
)
from servicekit.errors import InvalidArgument, NotFound, Unavailable

log = logging.getLogger("dvc.payments.reconciliation")
# What the DvcReconciliationMismatches alert watches: lines a status query could not resolve.
MISMATCHES = Counter("dvc_reconciliation_mismatches", "Settlement lines left disagreeing with the ledger after "
                     "status queries, by connector and verdict", ["connector", "status"])

MAX_STATISTICS_DAYS = 366


@dataclass(frozen=True)
class Summary:
    """Counts of one report (over the items the caller may see)."""

    report: ReconciliationReport
    counts: dict[MatchStatus, int]
    resolved: int


@dataclass(frozen=True)
class AgencyDay:
    """Online payment totals of one agency on one day."""

    day: str
    agency_code: str
    created: int
    paid: int
    paid_amount: int

    @property
    def online_payment_rate(self) -> float:
        return self.paid / self.created if self.created else 0.0


@dataclass(frozen=True)
class StatisticsRow:
    """Totals of one (day, agency, procedure, channel) cell."""

    day: str
    agency_code: str
    procedure_code: str
    channel: str
    created: int
    paid: int
    paid_amount: int


def parse_day(value: str, field_name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.single(field_name, "must be a date YYYY-MM-DD") from None


def _file_key(day: date, content: bytes, origin: str = "") -> str:
    """The idempotency key of a settlement file given without one: its day and content. ``origin`` keeps fetched
    files apart from uploads and from the reports of fetches made before they were named by their content."""
    return f"{day.isoformat()}:{origin}{uuid.uuid5(uuid.NAMESPACE_OID, content.hex()).hex}"


def _settlement_bytes(lines: list[SettlementLine]) -> bytes:
    """A fetched file's content as the connector parsed it (connectors hand back lines, not the file's bytes)."""
    return "\n".join(f"{line.reference},{line.provider_reference},{line.amount},{line.status.value},"
                     f"{line.settled_on.isoformat()}" for line in lines).encode()


class Reporting:
    """Reconciliation and statistics over the payment ledger."""

    def __init__(self, services: PaymentServices) -> None:
        self.services = services

    def import_settlement(self, caller: Caller, connector_code: str, settlement_date: str, content: bytes,
                          idempotency_key: str) -> Summary:
        """Parse (or fetch) the day's settlement file, match it against the ledger, resolve what a status query
        can resolve, and store the report; a retry with the same key returns the stored report."""
        caller.require_admin()
        day = parse_day(settlement_date, "settlement_date")
        connector = self.services.connectors.get(connector_code)
        if connector is None:
            raise NotFound(f"no connector {connector_code!r} is configured", reason="UNKNOWN_CONNECTOR")
        key = idempotency_key or (_file_key(day, content) if content else "")
        existing = self._stored(connector_code, key) if key else None
        if existing is not None:
            return self._summary(existing, None)
        try:
            lines = connector.parse_settlement(content) if content else connector.fetch_settlement(day)
        except ConnectorError as error:
            if content:
                raise InvalidArgument.single("content", f"not a {connector_code} settlement file: {error}") from None
            raise Unavailable(f"could not fetch the settlement file from {connector_code}: {error}",
                              reason="CONNECTOR_ERROR") from None
        if not key:
            # A fetch without a key is named by what was fetched: the same file again returns its report, while a
            # file the counterpart has since corrected or completed makes a new one.
            key = _file_key(day, _settlement_bytes(lines), "fetched:")
            existing = self._stored(connector_code, key)
            if existing is not None:
                return self._summary(existing, None)
        start = datetime.combine(day - timedelta(days=1), time.min, VIETNAM)
        end = datetime.combine(day + timedelta(days=1), time.min, VIETNAM)
        with self.services.uow_factory() as uow:
            ledger = uow.payments.ledger([line.reference for line in lines])
            paid = uow.payments.paid_through(connector_code, start + timedelta(days=1), end)
        items = reconcile(lines, ledger, paid)
        stored = [self._resolve(connector_code, item) for item in items]
        report = ReconciliationReport(uuid.uuid4().hex, connector_code, day.isoformat(), key,
                                      self.services.clock.now())
        with self.services.uow_factory() as uow:
            uow.reconciliation.add(report, stored)
            uow.commit()
        for line in stored:
            if line.item.status is not MatchStatus.MATCHED and not line.resolved:
                MISMATCHES.labels(connector_code, line.item.status.value).inc()
        return self._summary(report, None)

    def _stored(self, connector_code: str, key: str) -> ReconciliationReport | None:
        with self.services.uow_factory() as uow:
            return uow.reconciliation.find(connector_code, key)

    def _resolve(self, connector_code: str, item: ReconciliationItem) -> StoredReconciliationItem:
        """A status mismatch or a payment missing at the bank may just be a lost callback: ask the connector and
        apply what it says; the item is resolved when ledger and counterpart then agree."""
        if item.status not in (MatchStatus.STATUS_MISMATCH, MatchStatus.MISSING_AT_BANK) or not item.payment_id:
            return StoredReconciliationItem(item)
        connector = self.services.connectors.get(connector_code)
        with self.services.uow_factory() as uow:
            payment = uow.payments.get(item.payment_id)
        if connector is None or payment is None:
            return StoredReconciliationItem(item)
        try:
            result: ConnectorResult = query_status(connector, payment)
        except ConnectorError:
            return StoredReconciliationItem(item)
        if result.status is ConnectorStatus.SUCCEEDED and payment.status not in PAID_STATUSES:
            self.services.apply_status_result(payment, connector_code, result, EventSource.RECONCILIATION)
            with self.services.uow_factory() as uow:
                after = uow.payments.get(item.payment_id)
            if after is not None and after.status in PAID_STATUSES:
                return StoredReconciliationItem(replace(item, ledger_status=after.status.value,
                                                        note=f"{item.note}; resolved by status query"), True)
        if item.status is MatchStatus.MISSING_AT_BANK and result.status is ConnectorStatus.SUCCEEDED:
            # The counterpart confirms the payment: it will be in a later file; nothing is wrong in the ledger.
            return StoredReconciliationItem(replace(item, note=f"{item.note}; counterpart confirms it"), True)
        return StoredReconciliationItem(item)

    def _report(self, caller: Caller, report_id: str) -> ReconciliationReport:
        caller.require(SCOPE_READ)
        with self.services.uow_factory() as uow:
            report = uow.reconciliation.get(report_id)
        if report is None:
            raise NotFound(f"no reconciliation report {report_id!r}", reason="REPORT_NOT_FOUND")
        return report

    def _summary(self, report: ReconciliationReport, agency: str | None) -> Summary:
        counts = dict.fromkeys(MatchStatus, 0)
        resolved = 0
        for _cursor, stored in self._all_items(report.id, agency, None):
            counts[stored.item.status] += 1
            resolved += stored.resolved
        return Summary(report, counts, resolved)

    def _all_items(self, report_id: str, agency: str | None, status: MatchStatus | None,
                   ) -> list[tuple[int, StoredReconciliationItem]]:
        collected: list[tuple[int, StoredReconciliationItem]] = []
        after = 0
        while True:
            with self.services.uow_factory() as uow:
                batch = uow.reconciliation.items(report_id, agency, status, after, 1000)
            collected.extend(batch)
            if len(batch) < 1000:
                return collected
            after = batch[-1][0]

    def report(self, caller: Caller, report_id: str, agency_code: str, status: MatchStatus | None, token: str,
               size: int) -> tuple[Summary, list[StoredReconciliationItem], str]:
        """One page of a report, restricted to the caller's agency (admins: all or the one asked for)."""
        report = self._report(caller, report_id)
        agency = caller.agency_filter(agency_code)
        limit = page_size(size, 100, 1000)
        after = decode_offset(token)
        with self.services.uow_factory() as uow:
            rows = uow.reconciliation.items(report_id, agency, status, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return self._summary(report, agency), [stored for _, stored in rows], encode_token(rows[-1][0]) if more \
            else ""

    def export_csv(self, caller: Caller, report_id: str, agency_code: str) -> tuple[str, bytes]:
        report = self._report(caller, report_id)
        agency = caller.agency_filter(agency_code)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["status", "reference", "agency_code", "payment_id", "ledger_amount", "bank_amount",
                         "ledger_status", "bank_status", "provider_reference", "settled_on", "resolved", "note"])
        for _cursor, stored in self._all_items(report_id, agency, None):
            item = stored.item
            writer.writerow([item.status.value, item.reference, item.agency_code, item.payment_id,
                             "" if item.ledger_amount is None else item.ledger_amount,
                             "" if item.bank_amount is None else item.bank_amount, item.ledger_status,
                             item.bank_status, item.provider_reference,
                             item.settled_on.isoformat() if item.settled_on else "", str(stored.resolved).lower(),
                             item.note])
        suffix = f"-{agency}" if agency else ""
        filename = f"doi-soat-{report.connector_code}-{report.settlement_date}{suffix}.csv"
        return filename, buffer.getvalue().encode()

    def statistics(self, caller: Caller, from_date: str, to_date: str, agency_code: str,
                   ) -> tuple[list[StatisticsRow], list[AgencyDay]]:
        """Payments created per day, agency, procedure and channel, how many were paid and for how much; and
        the online payment rate per agency and day."""
        caller.require(SCOPE_READ)
        first = parse_day(from_date, "from_date")
        last = parse_day(to_date or from_date, "to_date")
        if last < first:
            raise InvalidArgument.single("to_date", "must not be before from_date")
        if (last - first).days >= MAX_STATISTICS_DAYS:
            raise InvalidArgument.single("to_date", f"the period may span at most {MAX_STATISTICS_DAYS} days")
        agency = caller.agency_filter(agency_code)
        with self.services.uow_factory() as uow:
            cells = uow.payments.statistics(first.isoformat(), last.isoformat(), agency)
        rows: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for cell in cells:
            paid = cell.status in PAID_STATUSES
            channel = cell.connector_code if paid else ""
            for bucket in (rows[(cell.day, cell.agency_code, cell.procedure_code, channel)],
                           totals[(cell.day, cell.agency_code)]):
                bucket[0] += cell.count
                bucket[1] += cell.count if paid else 0
                bucket[2] += cell.paid_amount if paid else 0
        return ([StatisticsRow(*key, *values) for key, values in sorted(rows.items())],
                [AgencyDay(*key, *values) for key, values in sorted(totals.items())])
