"""The invariant check holds the platform (faked here) to the load's own records: what the load sent, paid and
issued; and a missing or short ledger, or flows that did not complete, fail the run instead of passing on
nothing."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from dvc.payments.v1 import payments_pb2 as ppb
from dvc.wallet.v1 import wallet_pb2 as wpb

from loadtests import invariants
from loadtests.ledger import ATTEMPT, CALLBACK, DOCUMENT, FLOWS, PAYER, PAYMENT, REDEEMED, SHARE
from loadtests.run import KILLED, locust_exit

CITIZEN, OTHER = "079290000001", "079290000002"
SENT = 150_000


def ledger() -> list[dict[str, Any]]:
    """A healthy run's ledger: one paid payment, one document issued, shared and redeemed as issued."""
    return [
        {"kind": FLOWS, "started": {"dossier": 1, "payment": 1}, "completed": {"dossier": 1, "payment": 1}},
        {"kind": PAYMENT, "payment_id": "p1", "reference": "R1", "agency": "LT-HCM", "citizen_id": CITIZEN,
         "amount": SENT, "channel": "vnpay", "action": "pay", "created_day": "2026-11-22"},
        {"kind": PAYER, "payment_id": "p1", "done": True},
        {"kind": CALLBACK, "agency": "LT-HCM", "event_id": "e1", "header_event_id": "e1", "payment_id": "p1",
         "type": "payment.succeeded", "status": "succeeded", "sequence": 2, "signature_ok": True},
        {"kind": ATTEMPT, "citizen_id": CITIZEN, "content_sha256": "a" * 64},
        {"kind": DOCUMENT, "document_id": "d1", "citizen_id": CITIZEN, "issuer_agency": "STP-HCM",
         "type_code": "BIRTH_CERT", "content_sha256": "a" * 64},
        {"kind": ATTEMPT, "citizen_id": CITIZEN, "dossier_code": "HS-1"},
        {"kind": SHARE, "share_id": "s1", "citizen_id": CITIZEN, "agency": "LT-HCM", "dossier_code": "HS-1",
         "document_ids": ["d1"]},
        {"kind": REDEEMED, "share_id": "s1", "delivered": ["d1"], "sha256": {"d1": "a" * 64}, "valid": True},
    ]


def document(document_id: str, citizen: str = CITIZEN, sha: str = "a" * 64, **fields: Any) -> wpb.Document:
    return wpb.Document(document_id=document_id, citizen_id=citizen, content_sha256=sha, **fields)


class Token:
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", "Bearer test"),)


class Platform:
    """The platform as the checks read it; by default it agrees with `ledger()`."""

    def __init__(self) -> None:
        paid_at = ppb.Payment(paid_amount=SENT).paid_at
        paid_at.FromJsonString("2026-11-22T03:00:00Z")
        self.payment = ppb.Payment(id="p1", agency_code="LT-HCM", reference="R1", total_amount=SENT,
                                   status=ppb.PAYMENT_STATUS_SUCCEEDED, paid_amount=SENT, connector_code="vnpay",
                                   paid_at=paid_at)
        self.events = [ppb.PaymentEvent(event_id="e1", payment_id="p1", type="payment.succeeded",
                                        delivery_state=ppb.DELIVERY_STATE_DELIVERED)]
        self.settled = SENT
        self.documents = [document("d1", type_code="BIRTH_CERT", issuer_agency="STP-HCM")]
        self.shares = [wpb.Share(share_id="s1", citizen_id=CITIZEN, dossier_code="HS-1")]
        self.admin_payments = Token()
        self.payments = SimpleNamespace(GetPayment=self.get_payment, ListEvents=self.list_events,
                                        ImportSettlementFile=self.import_file,
                                        GetReconciliationReport=self.report)
        self.wallet = SimpleNamespace(ListDocuments=self.list_documents)

    def issuer(self, agency: str) -> Token:
        return Token()

    def citizen_view(self, citizen: str) -> tuple[list[Any], list[Any]]:
        return self.shares, self.documents

    def get_payment(self, request: Any, **_: Any) -> Any:
        return ppb.GetPaymentResponse(payment=self.payment)

    def list_events(self, request: Any, **_: Any) -> Any:
        return ppb.ListEventsResponse(events=[e for e in self.events if e.payment_id == request.payment_id])

    def import_file(self, request: Any, **_: Any) -> Any:
        return ppb.ImportSettlementFileResponse(summary=ppb.ReconciliationSummary(
            report_id=f"{request.connector_code}/{request.settlement_date}"))

    def report(self, request: Any, **_: Any) -> Any:
        items = [ppb.ReconciliationItem(status=ppb.RECONCILIATION_STATUS_MATCHED, reference="R1",
                                        agency_code="LT-HCM", payment_id="p1", bank_amount=self.settled)]
        return ppb.GetReconciliationReportResponse(items=items if request.report_id == "vnpay/2026-11-22" else [])

    def list_documents(self, request: Any, **_: Any) -> Any:
        return wpb.ListDocumentsResponse(documents=[d for d in self.documents if d.citizen_id == request.citizen_id])


def checked(platform: Platform, records: list[dict[str, Any]]) -> dict[str, invariants.Check]:
    payments, observed = invariants.check_payments(platform, records)
    checks = [payments, invariants.check_callbacks(platform, records, observed),
              invariants.check_documents(platform, records), invariants.check_shares(platform, records),
              invariants.check_reconciliation(platform, records, observed)]
    return {check.name.split(":")[0].split()[0]: check for check in checks}


def failing(platform: Platform, records: list[dict[str, Any]] | None = None) -> dict[str, list[str]]:
    return {name: check.problems for name, check in checked(platform, records or ledger()).items() if not check.ok}


def test_a_platform_that_agrees_with_the_load_passes() -> None:
    assert failing(Platform()) == {}


def test_a_total_other_than_the_amount_sent_fails() -> None:
    platform = Platform()
    platform.payment.total_amount = SENT + 1000
    assert "sent 150000" in failing(platform)["payments"][0]


def test_a_paid_payment_whose_success_never_reached_the_receiver_fails_even_when_the_platform_lists_nothing() -> None:
    # Before, the expected callbacks came from the platform's own ListEvents: an event it never created was not
    # missed.
    platform = Platform()
    platform.events = []
    records = [record for record in ledger() if record["kind"] != CALLBACK]
    assert "no signed payment.succeeded callback" in failing(platform, records)["callbacks"][0]


def test_a_redemption_of_other_content_or_other_documents_fails() -> None:
    records = ledger()
    records[-1]["sha256"] = {"d1": "b" * 64}
    assert "not the content issued" in failing(Platform(), records)["shares"][0]
    records = ledger()
    records[-1] |= {"delivered": ["d1", "d9"], "sha256": {"d1": "a" * 64, "d9": "c" * 64}}
    assert "delivered ['d1', 'd9'], shared ['d1']" in failing(Platform(), records)["shares"][0]


def test_a_citizen_seeing_anything_the_load_did_not_give_them_fails() -> None:
    leaked = Platform()
    leaked.documents = [*leaked.documents, document("d7", OTHER, "d" * 64, type_code="BIRTH_CERT")]
    assert any("d7" in problem for problem in failing(leaked)["shares"])
    foreign_receipt = Platform()
    foreign_receipt.documents = [*foreign_receipt.documents,
                                 document("r2", sha="e" * 64, type_code="FEE_RECEIPT",
                                          metadata={"payment_reference": "R-OF-SOMEBODY-ELSE"})]
    assert any("r2" in problem for problem in failing(foreign_receipt)["shares"])
    foreign_share = Platform()
    foreign_share.shares = [*foreign_share.shares, wpb.Share(share_id="s9", citizen_id=OTHER, dossier_code="HS-9")]
    assert any("s9" in problem for problem in failing(foreign_share)["shares"])


def test_own_receipts_and_a_document_whose_issue_call_failed_yet_took_effect_are_expected() -> None:
    platform = Platform()
    platform.documents = [*platform.documents,
                          document("r1", sha="e" * 64, type_code="FEE_RECEIPT", metadata={"payment_reference": "R1"}),
                          document("d2", sha="f" * 64, type_code="JUDICIAL_RECORD", issuer_agency="STP-HCM")]
    records = [*ledger(), {"kind": ATTEMPT, "citizen_id": CITIZEN, "content_sha256": "f" * 64}]
    assert failing(platform, records) == {}
    assert any("d2" in problem for problem in failing(platform)["shares"])  # without the attempt: not theirs


def test_reconciliation_is_held_to_the_amount_the_load_paid_not_the_platforms_paid_amount() -> None:
    platform = Platform()
    platform.payment.paid_amount = platform.settled = SENT - 1000  # the platform and the bank agree on less
    assert "paid 150,000 đồng, settlement file matched 149,000" in failing(platform)["reconciliation"][0]


def write(directory: Path, records: list[dict[str, Any]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ledger-test-1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_a_missing_ledger_fails_without_asking_the_platform(tmp_path: Path) -> None:
    checks = invariants.run_checks(tmp_path / "never-written")
    assert not all(check.ok for check in checks)
    assert "no ledger-*.jsonl" in checks[0].problems[0]


def test_a_ledger_short_of_what_locust_counted_fails(tmp_path: Path) -> None:
    write(tmp_path, [])
    [ledger_check, flows_check] = invariants.run_checks(tmp_path, locust_successes={
        "PaymentService/CreatePayment": 30, "WalletService/IssueDocument": 0})
    assert ledger_check.problems == ["0 payment records, but Locust counted 30 successful PaymentService/CreatePayment"]
    assert not flows_check.ok  # no flow counts either


def test_flows_below_the_stated_share_completed_fail() -> None:
    def flows(started: dict[str, int], completed: dict[str, int]) -> invariants.Check:
        return invariants.check_flows([{"kind": FLOWS, "started": started, "completed": completed}])

    assert flows({"dossier": 100, "payment": 50}, {"dossier": 100, "payment": 48}).ok
    assert flows({"dossier": 100, "payment": 50}, {"dossier": 94, "payment": 50}).problems == [
        "dossier: 94 of 100 completed (94.0%)"]
    assert flows({"dossier": 100}, {"dossier": 100}).problems == ["no payment flow started"]
    assert not invariants.check_flows([]).ok


@pytest.mark.parametrize(("code", "ok"), [(0, True), (KILLED, False), (1, False)])
def test_a_locust_that_did_not_end_by_itself_fails_the_run(code: int, ok: bool) -> None:
    assert locust_exit(code).ok is ok

