"""The invariant check after a load run: nothing the load did is lost or wrong on the platform.

1. Every payment is in the state the sandbox's treatment implies (paid -> SUCCEEDED, failed -> FAILED, abandoned
   or a VietQR transfer never made -> CREATED/PENDING/EXPIRED; a flow cut short at the end may be either).
2. Every agency-visible event of those payments reached the provincial receiver with a valid signature, each
   event id at least once (repeats carry the same id), none unknown, none still undelivered.
3. Every issued document is in its citizen's wallet; every share was redeemed with all its documents verified;
   for a sample of citizens, their own view lists every share and document the load gave them.
4. Per agency and connector, the paid totals equal the MATCHED totals of the reconciliation report built from
   the sandboxes' settlement files, with no mismatch on the load's payments.

`python -m loadtests.invariants LEDGER_DIR` runs it against the platform the DVC_LOADTEST_* variables name."""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import grpc
import requests
from dvc.identity.v1 import identity_pb2 as ipb
from dvc.identity.v1 import identity_pb2_grpc
from dvc.payments.v1 import payments_pb2 as ppb
from dvc.payments.v1 import payments_pb2_grpc
from dvc.wallet.v1 import wallet_pb2 as wpb
from dvc.wallet.v1 import wallet_pb2_grpc

from loadtests.ledger import CALLBACK, DOCUMENT, PAYER, PAYMENT, REDEEMED, SHARE, read_ledgers
from loadtests.world import (
    AUDIENCE_IDENTITY,
    AUDIENCE_PAYMENTS,
    AUDIENCE_WALLET,
    ClientToken,
    Targets,
    vneid_login,
)

T = TypeVar("T")
VIETNAM = timezone(timedelta(hours=7))
TIMEOUT = 30.0
CITIZEN_SAMPLE = 20       # citizens whose own wallet view is checked (each costs a VNeID login)
MAX_EXAMPLES = 5          # problems listed per invariant; the count says how many there are
S = ppb.PaymentStatus
UNPAID = {S.Name(S.PAYMENT_STATUS_CREATED), S.Name(S.PAYMENT_STATUS_PENDING), S.Name(S.PAYMENT_STATUS_EXPIRED)}
OUTCOME = {"pay": {S.Name(S.PAYMENT_STATUS_SUCCEEDED)}, "fail": {S.Name(S.PAYMENT_STATUS_FAILED)}}


@dataclass
class Check:
    """One invariant's verdict."""

    name: str
    checked: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def line(self) -> str:
        verdict = "PASS" if self.ok else f"FAIL ({len(self.problems)} problems)"
        details = "; ".join(self.problems[:MAX_EXAMPLES] + self.notes)
        return f"{verdict:<18} {self.name}: {self.checked} checked" + (f" — {details}" if details else "")


def expected_statuses(action: str, done: bool | None) -> set[str]:
    """Statuses a payment may be in after the payer's ``action``; ``done`` says whether the sandbox was told
    (None: the flow was cut short at the end of the run, so either is possible)."""
    if done is None:
        return UNPAID | OUTCOME.get(action, set())
    return OUTCOME[action] if done and action in OUTCOME else UNPAID


def _parallel(function: Callable[[Any], T], items: Iterable[Any], workers: int = 8) -> list[T]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(function, items))


class Platform:
    """Admin and agency-side access to the platform for the checks."""

    def __init__(self, targets: Targets) -> None:
        self.targets = targets
        self.channels = [grpc.insecure_channel(address) for address in (targets.identity, targets.payment,
                                                                        targets.wallet)]
        self.identity = identity_pb2_grpc.IdentityServiceStub(self.channels[0])
        self.payments = payments_pb2_grpc.PaymentServiceStub(self.channels[1])
        self.wallet = wallet_pb2_grpc.WalletServiceStub(self.channels[2])
        self.admin = ClientToken(self.identity, targets.admin_client_id, targets.admin_client_secret,
                                 AUDIENCE_IDENTITY)
        self.admin_payments = ClientToken(self.identity, targets.admin_client_id, targets.admin_client_secret,
                                          AUDIENCE_PAYMENTS)
        self._issuers: dict[str, ClientToken] = {}

    def issuer(self, agency: str) -> ClientToken:
        """A fresh wallet.issue client of ``agency`` (issuers list the documents they issued)."""
        if agency not in self._issuers:
            client_id = f"invariants-{uuid.uuid4().hex[:8]}-{agency.lower()}"
            answer = self.identity.RegisterClient(ipb.RegisterClientRequest(
                idempotency_key=client_id, client_id=client_id, display_name="load test invariant check",
                agency=agency, scopes=["wallet.issue"], auth_method=ipb.CLIENT_AUTH_METHOD_CLIENT_SECRET),
                metadata=self.admin.metadata(), timeout=TIMEOUT)
            self._issuers[agency] = ClientToken(self.identity, client_id, answer.client_secret, AUDIENCE_WALLET)
        return self._issuers[agency]

    def close(self) -> None:
        for channel in self.channels:
            channel.close()


def check_payments(platform: Platform, records: list[dict[str, Any]]) -> tuple[Check, dict[str, Any]]:
    check = Check("payments in the state the sandbox implies")
    done = {record["payment_id"]: bool(record["done"]) for record in records if record["kind"] == PAYER}
    created = [record for record in records if record["kind"] == PAYMENT]
    metadata = platform.admin_payments.metadata()

    def fetch(record: dict[str, Any]) -> Any:
        return platform.payments.GetPayment(ppb.GetPaymentRequest(payment_id=record["payment_id"]),
                                            metadata=metadata, timeout=TIMEOUT).payment

    observed = {payment.id: payment for payment in _parallel(fetch, created)}
    outcomes: Counter[str] = Counter()
    for record in created:
        payment = observed[record["payment_id"]]
        status = S.Name(payment.status)
        outcomes[f"{record['action']}->{status.removeprefix('PAYMENT_STATUS_')}"] += 1
        allowed = expected_statuses(record["action"], done.get(record["payment_id"]))
        check.checked += 1
        if status not in allowed:
            check.problem(f"{record['reference']} ({record['channel']}, payer {record['action']}) is {status}, "
                          f"expected {' or '.join(sorted(allowed))}")
        if payment.total_amount != record["amount"]:
            check.problem(f"{record['reference']} total {payment.total_amount} != created {record['amount']}")
    check.notes.append("outcomes " + ", ".join(f"{key} {count}" for key, count in sorted(outcomes.items())))
    return check, observed


def check_callbacks(platform: Platform, records: list[dict[str, Any]], observed: dict[str, Any]) -> Check:
    check = Check("callbacks: every event at the receiver once per event id, signed")
    received = [record for record in records if record["kind"] == CALLBACK]
    forged = [record for record in received if not record.get("signature_ok")]
    for record in forged:
        check.problem(f"callback for {record.get('agency')} failed signature check: {record.get('error')}")
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in received:
        if record.get("signature_ok"):
            by_id[record["event_id"]].append(record)
    metadata = platform.admin_payments.metadata()

    def events_of(payment_id: str) -> list[Any]:
        events: list[Any] = []
        token = ""
        while True:
            page = platform.payments.ListEvents(ppb.ListEventsRequest(payment_id=payment_id, page_size=500,
                                                                      page_token=token),
                                                metadata=metadata, timeout=TIMEOUT)
            events.extend(page.events)
            token = page.next_page_token
            if not token:
                return events

    expected: dict[str, Any] = {}
    for events in _parallel(events_of, list(observed)):
        for event in events:
            if event.delivery_state != ppb.DELIVERY_STATE_NOT_SENT:
                expected[event.event_id] = event
    for event_id, event in expected.items():
        check.checked += 1
        copies = by_id.get(event_id, [])
        if not copies:
            check.problem(f"event {event_id} ({event.type} of payment {event.payment_id}) never reached the "
                          f"receiver (delivery {ppb.DeliveryState.Name(event.delivery_state)})")
            continue
        if any(copy["payment_id"] != event.payment_id or copy["type"] != event.type
               or copy.get("header_event_id", event_id) != event_id for copy in copies):
            check.problem(f"event {event_id}: a copy carries another payment, type or X-DVC-Event-Id")
    ours = set(observed)
    unknown = [event_id for event_id, copies in by_id.items()
               if event_id not in expected and copies[0]["payment_id"] in ours]
    for event_id in unknown:
        check.problem(f"the receiver got event {event_id}, which the platform does not list")
    repeats = sum(len(copies) - 1 for copies in by_id.values())
    check.notes.append(f"{len(received)} deliveries received, {repeats} repeats of an event id")
    return check


def check_documents(platform: Platform, records: list[dict[str, Any]]) -> Check:
    check = Check("documents: every issued document is in its citizen's wallet")
    issued: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        if record["kind"] == DOCUMENT:
            issued[(record["issuer_agency"], record["citizen_id"])].add(record["document_id"])

    def listed(key: tuple[str, str]) -> set[str]:
        agency, citizen = key
        metadata = platform.issuer(agency).metadata()
        found: set[str] = set()
        token = ""
        while True:
            page = platform.wallet.ListDocuments(wpb.ListDocumentsRequest(citizen_id=citizen, include_inactive=True,
                                                                          page_size=500, page_token=token),
                                                 metadata=metadata, timeout=TIMEOUT)
            found.update(document.document_id for document in page.documents)
            token = page.next_page_token
            if not token:
                return found

    for agency in {agency for agency, _ in issued}:
        platform.issuer(agency)  # registered once, before the parallel listing
    keys = list(issued)
    for key, found in zip(keys, _parallel(listed, keys), strict=True):
        missing = issued[key] - found
        check.checked += len(issued[key])
        for document_id in sorted(missing):
            check.problem(f"document {document_id} issued by {key[0]} to {key[1]} is not in the wallet")
    return check


def check_shares(platform: Platform, records: list[dict[str, Any]]) -> Check:
    check = Check("shares: every share redeemed with its documents verified; citizens see theirs")
    redeemed = {record["share_id"]: record for record in records if record["kind"] == REDEEMED}
    shares = [record for record in records if record["kind"] == SHARE]
    unredeemed = 0
    for share in shares:
        check.checked += 1
        outcome = redeemed.get(share["share_id"])
        if outcome is None:
            unredeemed += 1  # the redemption failed (reported by Locust) or the run ended first
        elif outcome["documents"] != len(share["document_ids"]) or not outcome["valid"]:
            check.problem(f"share {share['share_id']}: {outcome['documents']} of {len(share['document_ids'])} "
                          f"documents redeemed, verified={outcome['valid']}")
    by_citizen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for share in shares:
        by_citizen[share["citizen_id"]].append(share)
    documents: dict[str, set[str]] = defaultdict(set)
    for record in records:
        if record["kind"] == DOCUMENT:
            documents[record["citizen_id"]].add(record["document_id"])
    sample = random.sample(sorted(by_citizen), min(CITIZEN_SAMPLE, len(by_citizen)))
    http = requests.Session()
    for citizen in sample:
        seen_shares, seen_documents = citizen_view(platform, vneid_login(platform.identity, http, citizen,
                                                                         timeout=TIMEOUT))
        for share in by_citizen[citizen]:
            if share["share_id"] not in seen_shares:
                check.problem(f"citizen {citizen} does not see share {share['share_id']}")
        for document_id in documents[citizen] - seen_documents:
            check.problem(f"citizen {citizen} does not see document {document_id}")
    check.notes.append(f"{unredeemed} shares not redeemed (failed RedeemShare or cut short by the end of the run; "
                       f"the citizens' view still lists them)")
    check.notes.append(f"{len(sample)} citizens' own view checked")
    http.close()
    return check


def citizen_view(platform: Platform, token: str) -> tuple[set[str], set[str]]:
    """The share ids and document ids a citizen sees in their own wallet (inactive ones included)."""
    metadata = (("authorization", f"Bearer {token}"),)
    shares = _pages(lambda page: platform.wallet.ListShares(
        wpb.ListSharesRequest(include_inactive=True, page_size=500, page_token=page), metadata=metadata,
        timeout=TIMEOUT), "shares")
    documents = _pages(lambda page: platform.wallet.ListDocuments(
        wpb.ListDocumentsRequest(include_inactive=True, page_size=500, page_token=page), metadata=metadata,
        timeout=TIMEOUT), "documents")
    return {share.share_id for share in shares}, {document.document_id for document in documents}


def _pages(call: Callable[[str], Any], attribute: str) -> list[Any]:
    items: list[Any] = []
    token = ""
    while True:
        page = call(token)
        items.extend(getattr(page, attribute))
        token = page.next_page_token
        if not token:
            return items


def check_reconciliation(platform: Platform, records: list[dict[str, Any]], observed: dict[str, Any]) -> Check:
    check = Check("reconciliation: paid totals per agency match the settlement files")
    ours = {record["payment_id"]: record for record in records if record["kind"] == PAYMENT}
    paid: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for payment in observed.values():
        if payment.status == ppb.PAYMENT_STATUS_SUCCEEDED:
            day = payment.paid_at.ToDatetime().replace(tzinfo=UTC).astimezone(VIETNAM).date().isoformat()
            paid[(payment.connector_code, day)].append(payment)
    metadata = platform.admin_payments.metadata()
    agencies = {record["agency"] for record in ours.values()}
    for (connector, day), payments in sorted(paid.items()):
        summary = platform.payments.ImportSettlementFile(ppb.ImportSettlementFileRequest(
            connector_code=connector, settlement_date=day, idempotency_key=f"loadtest-{uuid.uuid4().hex}"),
            metadata=metadata, timeout=TIMEOUT * 4).summary
        report_id = summary.report_id

        def report_page(token: str, report_id: str = report_id) -> Any:
            return platform.payments.GetReconciliationReport(ppb.GetReconciliationReportRequest(
                report_id=report_id, page_size=1000, page_token=token), metadata=metadata, timeout=TIMEOUT)

        items = _pages(report_page, "items")
        matched: Counter[str] = Counter()
        for item in items:
            if item.payment_id in ours or item.agency_code in agencies:
                if item.status == ppb.RECONCILIATION_STATUS_MATCHED:
                    matched[item.agency_code] += item.bank_amount
                elif not item.resolved:
                    check.problem(f"{connector} {day}: {ppb.ReconciliationStatus.Name(item.status)} for "
                                  f"{item.reference} ({item.note})")
        ledger: Counter[str] = Counter()
        for payment in payments:
            ledger[payment.agency_code] += payment.paid_amount
        for agency in sorted(set(ledger) | set(matched)):
            check.checked += 1
            if ledger[agency] != matched[agency]:
                check.problem(f"{connector} {day} {agency}: paid {ledger[agency]:,} đồng, settlement file matched "
                              f"{matched[agency]:,} đồng")
    check.notes.append(f"{len(paid)} settlement files imported")
    return check


def run_checks(ledger_dir: Path, targets: Targets | None = None) -> list[Check]:
    """Every invariant over the ledgers in ``ledger_dir``; the platform must still be running."""
    records = read_ledgers(sorted(ledger_dir.glob("ledger-*.jsonl")))
    platform = Platform(targets or Targets())
    try:
        payments, observed = check_payments(platform, records)
        return [payments, check_callbacks(platform, records, observed), check_documents(platform, records),
                check_shares(platform, records), check_reconciliation(platform, records, observed)]
    finally:
        platform.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.invariants", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ledger_dir", type=Path)
    args = parser.parse_args(argv)
    checks = run_checks(args.ledger_dir)
    for check in checks:
        print(check.line())
    return 0 if all(check.ok for check in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
