"""The load's flows against fake stubs: no flow fails without Locust counting it (a refused VNeID login, a wallet
that lists none of the citizen's documents, a redemption that delivers other bytes), and the ledger records what
the load sent and issued, not the platform's answers."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from dvc.identity.v1 import identity_pb2 as ipb
from dvc.payments.v1 import payments_pb2 as ppb
from dvc.wallet.v1 import wallet_pb2 as wpb

from loadtests import flows, slo
from loadtests.grpc_users import Reported, run_flow, timed
from loadtests.ledger import DOCUMENT, PAYMENT, REDEEMED, Ledger
from loadtests.world import BASE_DOCUMENT_ISSUER, RESULT_ISSUER, Agency, World, vneid_login

CITIZEN = "079290000001"
README = Path(__file__).resolve().parents[3] / "loadtests" / "README.md"


class Events:
    """A Locust environment's request event: remembers what was fired."""

    def __init__(self) -> None:
        self.fired: list[dict[str, Any]] = []
        self.events = SimpleNamespace(request=SimpleNamespace(fire=lambda **event: self.fired.append(event)))

    def failures(self) -> list[tuple[str, str]]:
        return [(event["request_type"], event["name"]) for event in self.fired if event["exception"] is not None]


class Token:
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", "Bearer test"),)


class Identity:
    def StartLogin(self, request: Any, **_: Any) -> Any:
        return ipb.StartLoginResponse(authorization_url="http://vneid.test/authorize?state=s1&client_id=dvc")

    def CompleteLogin(self, request: Any, **_: Any) -> Any:
        return ipb.CompleteLoginResponse(tokens=ipb.TokenSet(access_token="citizen-token"))


class Sandbox:
    """The VNeID sandbox's form POST: a redirect back with ``query``."""

    def __init__(self, query: str = "code=c1&state=s1") -> None:
        self.query = query

    def post(self, url: str, **_: Any) -> Any:
        return SimpleNamespace(status_code=302, headers={"Location": f"http://portal.test/callback?{self.query}"},
                               text="")


class Wallet:
    """The wallet as the dossier flow meets it; ``lists`` and ``tamper`` make it misbehave."""

    def __init__(self, lists: bool = True, tamper: bool = False) -> None:
        self.documents: dict[str, bytes] = {}
        self.lists, self.tamper = lists, tamper

    def IssueDocument(self, messages: Any, **_: Any) -> Any:
        content = b"".join(message.chunk for message in messages if message.HasField("chunk"))
        document_id = f"doc-{len(self.documents)}"
        self.documents[document_id] = content
        return wpb.IssueDocumentResponse(document=wpb.Document(document_id=document_id))

    def ListDocuments(self, request: Any, **_: Any) -> Any:
        listed = [*self.documents, "receipt-1"] if self.lists else ["receipt-1"]  # an e-receipt the load never wrote
        return wpb.ListDocumentsResponse(documents=[wpb.Document(document_id=i) for i in reversed(listed)])

    def CreateShare(self, request: Any, **_: Any) -> Any:
        return wpb.CreateShareResponse(share=wpb.Share(share_id="share-1", document_ids=request.document_ids))

    def RedeemShare(self, request: Any, **_: Any) -> Any:
        yield wpb.RedeemShareResponse(share=wpb.Share(share_id=request.share_id))
        for document_id, content in self.documents.items():
            yield wpb.RedeemShareResponse(document=wpb.RedeemedDocument(
                document=wpb.Document(document_id=document_id), verification=wpb.Verification(valid=True),
                content_follows=True))
            yield wpb.RedeemShareResponse(chunk=wpb.ContentChunk(
                document_id=document_id, data=content[:-1] + bytes([content[-1] ^ 0xFF]) if self.tamper else content))


def world() -> World:
    agency = Agency("LT000001-HCM", ppb.BeneficiaryAccount(), "secret", Token(), Token())
    return World("000001", [agency], {BASE_DOCUMENT_ISSUER: Token(), RESULT_ISSUER: Token()},
                 Token(), [CITIZEN])


def dossier(wallet: Wallet, ledger: Ledger, events: Events, the_world: World | None = None) -> None:
    stubs = SimpleNamespace(identity=Identity(), wallet=wallet, payments=None)
    flows.dossier_flow(stubs, the_world or world(), ledger, Sandbox(), events, CITIZEN)


def test_a_vneid_refusal_is_reported_as_a_failed_authorize_step() -> None:
    # The sandbox refuses with a 302 carrying an error instead of a code: before, the timed step succeeded and the
    # RuntimeError raised after it was never reported.
    events = Events()
    with pytest.raises(Reported):
        vneid_login(Identity(), Sandbox("error=access_denied&state=s1"), CITIZEN,
                    lambda step: timed(events, "http", "VNeID sandbox POST /authorize", step))
    assert events.failures() == [("http", "VNeID sandbox POST /authorize")]


def test_a_flow_failure_no_step_reported_is_reported_once_as_a_failed_flow() -> None:
    events, started, completed = Events(), Counter[str](), Counter[str]()

    def wrong() -> None:
        raise flows.WrongAnswer("the wallet lists none of the documents issued")

    run_flow(events, "dossier", wrong, started, completed)
    assert events.failures() == [(slo.FLOW_KIND, "dossier")]
    assert (started["dossier"], completed["dossier"]) == (1, 0)


def test_failures_the_steps_reported_are_not_reported_again() -> None:
    events, started, completed = Events(), Counter[str](), Counter[str]()

    def failed_rpc() -> None:
        raise grpc.RpcError()  # the interceptor fired it already

    def failed_step() -> None:
        timed(events, "http", "sandbox payer pay", lambda: 1 / 0)

    run_flow(events, "payment", failed_rpc, started, completed)
    run_flow(events, "payment", failed_step, started, completed)
    run_flow(events, "payment", lambda: None, started, completed)
    assert events.failures() == [("http", "sandbox payer pay")]
    assert (started["payment"], completed["payment"]) == (3, 1)


def test_a_wallet_listing_none_of_the_issued_documents_fails_the_dossier_flow() -> None:
    # Before, `if not documents: return` ended the flow quietly; e-receipts (not the load's) are never shared.
    ledger = Ledger()
    with pytest.raises(flows.WrongAnswer, match="lists none of the 1 documents"):
        dossier(Wallet(lists=False), ledger, Events())
    assert len(ledger.of(DOCUMENT)) == 1


def test_a_redemption_records_the_content_received_and_content_other_than_issued_fails_the_flow() -> None:
    ledger = Ledger()
    dossier(Wallet(), ledger, Events())
    issued = {record["document_id"]: record["content_sha256"] for record in ledger.of(DOCUMENT)}
    [redeemed] = ledger.of(REDEEMED)
    assert redeemed["delivered"] == ["doc-0"] and redeemed["sha256"] == {"doc-0": issued["doc-0"]}
    assert len(ledger.of(DOCUMENT)) == 2  # the birth certificate, then the dossier's result

    tampered = Ledger()
    with pytest.raises(flows.WrongAnswer, match="not the content issued"):
        dossier(Wallet(tamper=True), tampered, Events())
    assert tampered.of(REDEEMED)[0]["sha256"]["doc-0"] != tampered.of(DOCUMENT)[0]["content_sha256"]


def test_the_documents_are_the_size_the_readme_states() -> None:
    ledger, wallet = Ledger(), Wallet()
    flows.issue_document(SimpleNamespace(wallet=wallet), world(), ledger, CITIZEN, BASE_DOCUMENT_ISSUER)
    [content] = wallet.documents.values()
    assert abs(len(content) - flows.DOCUMENT_SIZE_BYTES) < 64
    assert ledger.of(DOCUMENT)[0]["content_sha256"] == hashlib.sha256(content).hexdigest()
    # Every document size the README quotes is the one issued (it once said 100 KB for 16 KB documents).
    sizes = set(re.findall(r"(\d+) KB", README.read_text(encoding="utf-8")))
    assert sizes == {str(flows.DOCUMENT_SIZE_BYTES // 1024)}


def test_a_payment_is_recorded_with_the_amount_sent_not_the_platforms_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[Any] = []

    class Payments:
        def CreatePayment(self, request: Any, **_: Any) -> Any:
            sent.append(request)
            return ppb.CreatePaymentResponse(payment=ppb.Payment(id="p1", reference="R1", total_amount=1))

        def GetPayment(self, request: Any, **_: Any) -> Any:
            return ppb.GetPaymentResponse(payment=ppb.Payment(id="p1", status=ppb.PAYMENT_STATUS_CREATED))

        def ListEvents(self, request: Any, **_: Any) -> Any:
            return ppb.ListEventsResponse()

    monkeypatch.setattr(flows.gevent, "sleep", lambda seconds: None)
    monkeypatch.setattr(flows, "payer_acts", lambda *args: False)
    ledger = Ledger()
    flows.payment_flow(SimpleNamespace(payments=Payments()), world(), ledger, None, Events(),
                       None)
    [record] = ledger.of(PAYMENT)
    assert record["amount"] == sent[0].total_amount == sum(line.amount for line in sent[0].fee_lines) > 1
    assert record["citizen_id"] == CITIZEN
