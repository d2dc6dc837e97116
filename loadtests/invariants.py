"""The invariant check after a load run: nothing the load did is lost or wrong on the platform. The platform is
held to the load's own records (what it sent, paid and issued), never to its own answers.

0. The ledger is there (one file per load process) and recorded at least every call Locust counted as a
   successful CreatePayment/IssueDocument; at least `slo.MIN_FLOWS_COMPLETED` of the flows started completed.
1. Every payment is in the state the sandbox's treatment implies (paid -> SUCCEEDED, failed -> FAILED, abandoned
   or a VietQR transfer never made -> CREATED/PENDING/EXPIRED; a flow cut short at the end may be either), and
   its total is the amount the load sent.
2. Every payment the load's payer paid (failed) got a signed payment.succeeded (payment.failed) callback; every
   agency-visible event of those payments reached the provincial receiver with a valid signature, each event id
   at least once (repeats carry the same id), none unknown.
3. Every issued document is in its citizen's wallet, and the issuer lists nothing else for them; every share was
   redeemed with exactly its documents, verified, each content's SHA-256 the one issued; for a sample of
   citizens, their own view holds exactly the shares and documents the load gave them (and e-receipts of the
   payments the load paid for them): nothing missing, nothing of anybody else.
4. Per agency and connector, the amounts the load paid equal the MATCHED totals of the reconciliation report
   built from the sandboxes' settlement files, with no mismatch on the load's payments.

`python -m loadtests.invariants LEDGER_DIR` runs it against the platform the DVC_LOADTEST_* variables name."""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
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

from loadtests import slo
from loadtests.day import FLOWS_PER_DAY
from loadtests.ledger import (
    ATTEMPT,
    CALLBACK,
    DOCUMENT,
    FLOWS,
    PAYER,
    PAYMENT,
    REDEEMED,
    SHARE,
    read_ledgers,
    redemption_problems,
)
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
OUTCOME_EVENT = {"pay": "payment.succeeded", "fail": "payment.failed"}  # the callback a payer's action must cause
# Calls whose every success the flow writes to the ledger right away (Locust's request name -> record kind).
LEDGERED_CALLS = {"PaymentService/CreatePayment": PAYMENT, "WalletService/IssueDocument": DOCUMENT}
RECEIPT_TYPE = "FEE_RECEIPT"  # the payment service's e-receipts in the payer's wallet (its default type code)


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


@dataclass
class Given:
    """What the load gave each citizen, from its own records (by citizen id)."""

    documents: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))  # id -> SHA-256 sent
    shares: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    # Contents (SHA-256) and dossier codes of every issue/share the load tried: a call that failed may still have
    # taken effect, so what it carried may be there, but nothing else may.
    attempted: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    receipts: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))  # references the load paid

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> Given:
        given = cls()
        for record in records:
            citizen = record.get("citizen_id", "")
            if record["kind"] == DOCUMENT:
                given.documents[citizen][record["document_id"]] = record.get("content_sha256", "")
            elif record["kind"] == SHARE:
                given.shares[citizen].add(record["share_id"])
            elif record["kind"] == ATTEMPT:
                given.attempted[citizen].add(record.get("content_sha256") or record.get("dossier_code", ""))
            elif record["kind"] == PAYMENT and record["action"] == "pay":
                given.receipts[citizen].add(record["reference"])
        return given

    def unexpected(self, citizen: str, documents: Iterable[Any]) -> list[str]:
        """The ``documents`` (wallet Documents) the load did not give ``citizen``: neither issued to them (nor
        carrying a content sent to them by a call that failed) nor the e-receipt of a payment it paid for them."""
        problems = []
        for document in documents:
            if (document.document_id in self.documents[citizen] or document.content_sha256 in self.attempted[citizen]
                    or (document.type_code == RECEIPT_TYPE
                        and document.metadata.get("payment_reference") in self.receipts[citizen])):
                continue
            problems.append(f"{citizen}'s wallet holds {document.document_id} ({document.type_code or 'upload'} "
                            f"of {document.issuer_agency or 'nobody'}, citizen {document.citizen_id}), which the load "
                            f"never gave them")
        return problems


def check_ledger(ledger_dir: Path, paths: list[Path], records: list[dict[str, Any]],
                 locust_successes: Mapping[str, int] | None = None) -> Check:
    """The ledger is the yardstick of every other check: missing or short, they would pass on nothing."""
    check = Check("ledger: written, and holding every successful call Locust counted")
    check.checked = len(paths)
    if not paths:
        check.problem(f"no ledger-*.jsonl in {ledger_dir}: the load process did not write one (it does when Locust "
                      f"stops; killed, or --ledger-dir missing?)")
    for rpc, kind in LEDGERED_CALLS.items():
        recorded = sum(1 for record in records if record["kind"] == kind)
        counted = (locust_successes or {}).get(rpc, 0)
        if recorded < counted:
            check.problem(f"{recorded:,} {kind} records, but Locust counted {counted:,} successful {rpc}")
    return check


def check_flows(records: list[dict[str, Any]]) -> Check:
    """Flows that stopped without a failed request would go unnoticed by the error rate: count them."""
    check = Check(f"flows: at least {slo.MIN_FLOWS_COMPLETED:.0%} of those started completed")
    started: Counter[str] = Counter()
    completed: Counter[str] = Counter()
    tallies = [record for record in records if record["kind"] == FLOWS]
    for record in tallies:
        started.update(record["started"])
        completed.update(record["completed"])
    if not tallies:
        check.problem("the ledger holds no flow counts (each load process writes them when Locust stops)")
    for name in sorted(set(FLOWS_PER_DAY) | set(started)) if tallies else ():
        check.checked += started[name]
        if not started[name]:
            check.problem(f"no {name} flow started")
        elif completed[name] < slo.MIN_FLOWS_COMPLETED * started[name]:
            check.problem(f"{name}: {completed[name]:,} of {started[name]:,} completed "
                          f"({completed[name] / started[name]:.1%})")
    check.notes.append(", ".join(f"{name} {completed[name]:,}/{started[name]:,}" for name in sorted(started)))
    return check


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

    def citizen_view(self, citizen: str) -> tuple[list[Any], list[Any]]:
        """The shares and documents ``citizen`` sees in their own wallet (logged in through VNeID; inactive ones
        included)."""
        with requests.Session() as http:
            token = vneid_login(self.identity, http, citizen, timeout=TIMEOUT)
        metadata = (("authorization", f"Bearer {token}"),)
        shares = _pages(lambda page: self.wallet.ListShares(
            wpb.ListSharesRequest(include_inactive=True, page_size=500, page_token=page), metadata=metadata,
            timeout=TIMEOUT), "shares")
        documents = _pages(lambda page: self.wallet.ListDocuments(
            wpb.ListDocumentsRequest(include_inactive=True, page_size=500, page_token=page), metadata=metadata,
            timeout=TIMEOUT), "documents")
        return shares, documents

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
            check.problem(f"{record['reference']} total {payment.total_amount} != sent {record['amount']}")
    check.notes.append("outcomes " + ", ".join(f"{key} {count}" for key, count in sorted(outcomes.items())))
    return check, observed


def check_callbacks(platform: Platform, records: list[dict[str, Any]], observed: dict[str, Any]) -> Check:
    check = Check("callbacks: each payer's outcome announced, every event at the receiver once per id, signed")
    received = [record for record in records if record["kind"] == CALLBACK]
    forged = [record for record in received if not record.get("signature_ok")]
    for record in forged:
        check.problem(f"callback for {record.get('agency')} failed signature check: {record.get('error')}")
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    types_by_payment: dict[str, set[str]] = defaultdict(set)
    for record in received:
        if record.get("signature_ok"):
            by_id[record["event_id"]].append(record)
            types_by_payment[record["payment_id"]].add(record["type"])
    # From the load's side first: what its payers did must have been announced, whatever the platform lists.
    done = {record["payment_id"]: record["done"] for record in records if record["kind"] == PAYER}
    for record in records:
        if record["kind"] == PAYMENT and done.get(record["payment_id"]) and record["action"] in OUTCOME_EVENT:
            wanted = OUTCOME_EVENT[record["action"]]
            check.checked += 1
            if wanted not in types_by_payment[record["payment_id"]]:
                check.problem(f"{record['reference']} ({record['channel']}): the payer's {record['action']} "
                              f"reached the sandbox, but no signed {wanted} callback reached the receiver")
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
    check = Check("documents: every issued document is in its citizen's wallet, nothing else from its issuer")
    issued: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        if record["kind"] == DOCUMENT:
            issued[(record["issuer_agency"], record["citizen_id"])].add(record["document_id"])

    def listed(key: tuple[str, str]) -> list[Any]:
        agency, citizen = key
        metadata = platform.issuer(agency).metadata()
        return _pages(lambda token: platform.wallet.ListDocuments(
            wpb.ListDocumentsRequest(citizen_id=citizen, include_inactive=True, page_size=500, page_token=token),
            metadata=metadata, timeout=TIMEOUT), "documents")

    for agency in {agency for agency, _ in issued}:
        platform.issuer(agency)  # registered once, before the parallel listing
    given = Given.of(records)
    keys = list(issued)
    for key, found in zip(keys, _parallel(listed, keys), strict=True):
        missing = issued[key] - {document.document_id for document in found}
        check.checked += len(issued[key])
        for document_id in sorted(missing):
            check.problem(f"document {document_id} issued by {key[0]} to {key[1]} is not in the wallet")
        for problem in given.unexpected(key[1], found):
            check.problem(f"{key[0]} lists: {problem}")
    return check


def check_shares(platform: Platform, records: list[dict[str, Any]]) -> Check:
    check = Check("shares: each redeemed with exactly its documents, verified, as issued; citizens see theirs")
    redeemed = {record["share_id"]: record for record in records if record["kind"] == REDEEMED}
    shares = [record for record in records if record["kind"] == SHARE]
    given = Given.of(records)
    issued = {document_id: digest for documents in given.documents.values()
              for document_id, digest in documents.items()}
    unredeemed = 0
    for share in shares:
        check.checked += 1
        outcome = redeemed.get(share["share_id"])
        if outcome is None:
            unredeemed += 1  # the redemption failed (reported by Locust) or the run ended first
            continue
        for problem in redemption_problems(share["document_ids"], outcome["delivered"], outcome["sha256"],
                                           outcome["valid"], issued):
            check.problem(f"share {share['share_id']}: {problem}")
    sample = random.sample(sorted(set(given.shares) | set(given.documents)),
                           min(CITIZEN_SAMPLE, len(set(given.shares) | set(given.documents))))
    for citizen in sample:
        seen_shares, seen_documents = platform.citizen_view(citizen)
        for share_id in sorted(given.shares[citizen] - {share.share_id for share in seen_shares}):
            check.problem(f"citizen {citizen} does not see share {share_id}")
        for share in seen_shares:
            if share.share_id not in given.shares[citizen] and share.dossier_code not in given.attempted[citizen]:
                check.problem(f"citizen {citizen} sees share {share.share_id} (dossier {share.dossier_code}, "
                              f"citizen {share.citizen_id}), which the load never made for them")
        seen_ids = {document.document_id for document in seen_documents}
        for document_id in sorted(set(given.documents[citizen]) - seen_ids):
            check.problem(f"citizen {citizen} does not see document {document_id}")
        for problem in given.unexpected(citizen, seen_documents):
            check.problem(f"in their own view, {problem}")
    check.notes.append(f"{unredeemed} shares not redeemed (failed RedeemShare or cut short by the end of the run; "
                       f"the citizens' view still lists them)")
    check.notes.append(f"{len(sample)} citizens' own view checked")
    return check


def _pages(call: Callable[[str], Any], attribute: str) -> list[Any]:
    items: list[Any] = []
    token = ""
    while True:
        page = call(token)
        items.extend(getattr(page, attribute))
        token = page.next_page_token
        if not token:
            return items


def paid_by_the_load(records: list[dict[str, Any]], observed: dict[str, Any]) -> dict[tuple[str, str], Counter[str]]:
    """The amounts the load sent for the payments its payers paid, per (connector, settlement day) and agency. A
    payment whose flow the end of the run cut short counts when the platform says SUCCEEDED. The platform only
    tells which day's settlement file holds a payment (the day it was paid; else the day the load created it)."""
    done = {record["payment_id"]: record["done"] for record in records if record["kind"] == PAYER}
    paid: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for record in records:
        if record["kind"] != PAYMENT or record["action"] != "pay" or done.get(record["payment_id"]) is False:
            continue
        payment = observed.get(record["payment_id"])
        if payment is not None and payment.status == ppb.PAYMENT_STATUS_SUCCEEDED:
            day = payment.paid_at.ToDatetime().replace(tzinfo=UTC).astimezone(VIETNAM).date().isoformat()
        elif done.get(record["payment_id"]) is None:
            continue
        else:
            day = record["created_day"]
        paid[(record["channel"], day)][record["agency"]] += record["amount"]
    return paid


def check_reconciliation(platform: Platform, records: list[dict[str, Any]], observed: dict[str, Any]) -> Check:
    check = Check("reconciliation: the amounts the load paid, per agency, match the settlement files")
    ours = {record["payment_id"]: record for record in records if record["kind"] == PAYMENT}
    paid = paid_by_the_load(records, observed)
    metadata = platform.admin_payments.metadata()
    agencies = {record["agency"] for record in ours.values()}
    for (connector, day), ledger in sorted(paid.items()):
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
        for agency in sorted(set(ledger) | set(matched)):
            check.checked += 1
            if ledger[agency] != matched[agency]:
                check.problem(f"{connector} {day} {agency}: paid {ledger[agency]:,} đồng, settlement file matched "
                              f"{matched[agency]:,} đồng")
    check.notes.append(f"{len(paid)} settlement files imported")
    return check


def run_checks(ledger_dir: Path, targets: Targets | None = None,
               locust_successes: Mapping[str, int] | None = None) -> list[Check]:
    """Every invariant over the ledgers in ``ledger_dir``; the platform must still be running.
    ``locust_successes``: successful requests by Locust name, when known, to tell a short ledger."""
    paths = sorted(ledger_dir.glob("ledger-*.jsonl"))
    records = read_ledgers(paths)
    own = [check_ledger(ledger_dir, paths, records, locust_successes), check_flows(records)]
    if not records:
        return own  # nothing to hold the platform to; the checks above fail
    platform = Platform(targets or Targets())
    try:
        payments, observed = check_payments(platform, records)
        return [*own, payments, check_callbacks(platform, records, observed), check_documents(platform, records),
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
