"""The day's flows, written as the real actors do them: the dossier flow (citizen, receiving agency, issuing
agency) and the payment flow (provincial system, payer at a bank or intermediary sandbox)."""

from __future__ import annotations

import hashlib
import itertools
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import gevent
import requests
from dvc.identity.v1 import identity_pb2_grpc
from dvc.payments.v1 import payments_pb2 as ppb
from dvc.payments.v1 import payments_pb2_grpc
from dvc.wallet.v1 import wallet_pb2 as wpb
from dvc.wallet.v1 import wallet_pb2_grpc

from loadtests.day import PAYER_ACTIONS, PAYER_CHANNELS
from loadtests.grpc_users import timed
from loadtests.ledger import ATTEMPT, DOCUMENT, PAYER, PAYMENT, REDEEMED, SHARE, Ledger, redemption_problems
from loadtests.world import (
    BASE_DOCUMENT_ISSUER,
    RESULT_ISSUER,
    RPC_TIMEOUT_SECONDS,
    Agency,
    Targets,
    World,
    vneid_login,
)
from wallet_service.bootstrap import dev_issuer_keys
from wallet_service.domain.manifest import manifest_bytes, sign

if TYPE_CHECKING:  # importing locust monkey-patches the interpreter: only the locustfile does it for real
    from locust.env import Environment

HTTP_TIMEOUT_SECONDS = 10.0
VIETNAM = timezone(timedelta(hours=7))
FINAL_STATUSES = {ppb.PAYMENT_STATUS_SUCCEEDED, ppb.PAYMENT_STATUS_FAILED, ppb.PAYMENT_STATUS_EXPIRED,
                  ppb.PAYMENT_STATUS_CANCELLED}
POLLS = 6                     # GetPayment polls while waiting for the outcome
POLL_INTERVAL_SECONDS = 0.5
RESULT_VALIDITY = timedelta(days=179)  # judicial record certificates: at most 180 days
DOCUMENT_SIZE_BYTES = 16 * 1024  # content of each issued document (the README quotes it)
_sequence = itertools.count()


@dataclass
class Stubs:
    """The gRPC stubs one Locust process shares (over instrumented channels)."""

    identity: identity_pb2_grpc.IdentityServiceStub
    payments: payments_pb2_grpc.PaymentServiceStub
    wallet: wallet_pb2_grpc.WalletServiceStub


class WrongAnswer(Exception):
    """The platform answered, but not what the load expects; no failed call shows it, so `run_flow` reports it."""


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_sequence)}-{uuid.uuid4().hex[:8]}"


def _pdf(label: str, size: int) -> bytes:
    """A distinct small PDF-looking document (the wallet sniffs the type; content addressing needs unique bytes)."""
    head = f"%PDF-1.7\n% {label}\n".encode()
    return head + hashlib.sha256(label.encode()).digest() * max(1, (size - len(head)) // 32)


# -- dossier flow --------------------------------------------------------------------------------------------

def issue_document(stubs: Stubs, world: World, ledger: Ledger, citizen: str, issuer: str) -> str:
    """The issuing agency signs a manifest with its key and streams the document into the citizen's wallet."""
    key = dev_issuer_keys()[issuer]
    today = datetime.now(VIETNAM).date().isoformat()
    valid_until: datetime | None = None
    if issuer == RESULT_ISSUER:
        type_code = "JUDICIAL_RECORD"
        metadata = {"full_name": f"Cong dan {citizen[-4:]}", "date_of_birth": "1990-01-01",
                    "certificate_number": _unique("LLTP"), "form_number": "1", "has_criminal_record": "false",
                    "issued_on": today}
        valid_until = (datetime.now(UTC) + RESULT_VALIDITY).replace(microsecond=0)
    else:
        type_code = "BIRTH_CERT"
        metadata = {"full_name": f"Cong dan {citizen[-4:]}", "date_of_birth": "1990-01-01", "sex": "Nam",
                    "place_of_birth": "TP. Ho Chi Minh", "registration_number": _unique("KS"),
                    "registered_on": "1990-01-10"}
    content = _pdf(f"{type_code} {citizen} {metadata.get('certificate_number') or metadata['registration_number']}",
                   DOCUMENT_SIZE_BYTES)
    digest = hashlib.sha256(content).hexdigest()
    ledger.add(ATTEMPT, citizen_id=citizen, content_sha256=digest)
    manifest = manifest_bytes(citizen_id=citizen, content_sha256=digest, document_type=type_code,
                              issuer_agency=issuer, metadata=metadata, valid_from=None, valid_until=valid_until)
    first = wpb.IssueDocumentMetadata(citizen_id=citizen, type_code=type_code, metadata=metadata,
                                      issuer_key_id=key.key_id, signature=sign(key.private_key, manifest),
                                      idempotency_key=_unique("issue"), content_sha256=digest)
    if valid_until is not None:
        first.valid_until.FromDatetime(valid_until)
    messages = [wpb.IssueDocumentRequest(metadata=first), wpb.IssueDocumentRequest(chunk=content)]
    answer = stubs.wallet.IssueDocument(iter(messages), metadata=world.issuers[issuer].metadata(),
                                        timeout=RPC_TIMEOUT_SECONDS)
    document_id = str(answer.document.document_id)
    ledger.add(DOCUMENT, document_id=document_id, citizen_id=citizen, issuer_agency=issuer, type_code=type_code,
               content_sha256=digest)
    world.documents.setdefault(citizen, {})[document_id] = digest
    return document_id


def redeem_share(stubs: Stubs, agency: Agency, share_id: str) -> tuple[list[str], dict[str, str], bool]:
    """The receiving agency redeems a share, content streamed: the document ids in the order delivered, the
    SHA-256 of each one's content as received, and whether every signature verified."""
    delivered: list[str] = []
    contents: dict[str, Any] = {}
    valid = True
    for message in stubs.wallet.RedeemShare(wpb.RedeemShareRequest(share_id=share_id,
                                                                   delivery=wpb.CONTENT_DELIVERY_STREAM),
                                            metadata=agency.redeem.metadata(), timeout=RPC_TIMEOUT_SECONDS):
        if message.HasField("document"):
            delivered.append(message.document.document.document_id)
            contents.setdefault(message.document.document.document_id, hashlib.sha256())
            valid = valid and message.document.verification.valid
        elif message.HasField("chunk"):
            contents.setdefault(message.chunk.document_id, hashlib.sha256()).update(message.chunk.data)
    return delivered, {document_id: digest.hexdigest() for document_id, digest in contents.items()}, valid


def dossier_flow(stubs: Stubs, world: World, ledger: Ledger, http: requests.Session, environment: Environment,
                 citizen: str) -> None:
    """One dossier reusing a result: (on a citizen's first dossier, the birth certificate is issued first) the
    citizen logs in, lists the wallet and shares documents with the receiving agency for the dossier; the agency
    redeems the share (content streamed and verified); the issuing agency issues the dossier's result."""
    with world.citizen_lock(citizen):  # only a citizen's first dossier issues; the others wait for it, not fail
        if not world.documents.get(citizen):  # none yet, or its issuance failed (reported): issue again
            issue_document(stubs, world, ledger, citizen, BASE_DOCUMENT_ISSUER)
    token = vneid_login(stubs.identity, http, citizen,
                        lambda step: timed(environment, "http", "VNeID sandbox POST /authorize", step))
    citizen_metadata = (("authorization", f"Bearer {token}"),)
    listed = stubs.wallet.ListDocuments(wpb.ListDocumentsRequest(page_size=50), metadata=citizen_metadata,
                                        timeout=RPC_TIMEOUT_SECONDS)
    issued = world.documents[citizen]
    documents = [document.document_id for document in listed.documents if document.document_id in issued][:2]
    if not documents:  # the wallet confirmed at least one of them before this listing
        raise WrongAnswer(f"the wallet of {citizen} lists none of the {len(issued)} documents issued to them")
    agency = random.choice(world.agencies)
    dossier = _unique(f"HS-{agency.code}")
    ledger.add(ATTEMPT, citizen_id=citizen, dossier_code=dossier)
    share = stubs.wallet.CreateShare(wpb.CreateShareRequest(
        document_ids=documents, agency_code=agency.code, dossier_code=dossier, procedure_code="1.001612",
        purpose="Hồ sơ cấp phiếu lý lịch tư pháp", max_uses=1, idempotency_key=_unique("share")),
        metadata=citizen_metadata, timeout=RPC_TIMEOUT_SECONDS).share
    ledger.add(SHARE, share_id=share.share_id, citizen_id=citizen, agency=agency.code, dossier_code=dossier,
               document_ids=documents)
    delivered, contents, valid = redeem_share(stubs, agency, share.share_id)
    ledger.add(REDEEMED, share_id=share.share_id, delivered=delivered, sha256=contents, valid=valid)
    problems = redemption_problems(documents, delivered, contents, valid, issued)
    if problems:
        raise WrongAnswer(f"share {share.share_id}: {'; '.join(problems)}")
    issue_document(stubs, world, ledger, citizen, RESULT_ISSUER)


def warm_up(stubs: Stubs, world: World, http: requests.Session, environment: Environment) -> None:
    """One call of each kind, one at a time, before the users start: every service fetches identity's keys
    (and identity the VNeID sandbox's) on first use, as a rolled-out deployment already has. Without it, the
    first burst of calls meets servicekit's JWKS cache mid-fetch and some fail UNKNOWN_KID (reported to the
    lead: a start-up race of the cache, not a steady-state behaviour)."""
    citizen = world.citizens[0]
    token = vneid_login(stubs.identity, http, citizen,
                        lambda step: timed(environment, "http", "VNeID sandbox POST /authorize", step))
    stubs.wallet.ListDocuments(wpb.ListDocumentsRequest(page_size=1),
                               metadata=(("authorization", f"Bearer {token}"),), timeout=RPC_TIMEOUT_SECONDS)
    for issuer in world.issuers.values():
        stubs.wallet.ListDocuments(wpb.ListDocumentsRequest(citizen_id=citizen, page_size=1),
                                   metadata=issuer.metadata(), timeout=RPC_TIMEOUT_SECONDS)
    for agency in world.agencies:
        stubs.payments.ListPayments(ppb.ListPaymentsRequest(page_size=1), metadata=agency.payments.metadata(),
                                    timeout=RPC_TIMEOUT_SECONDS)
        agency.redeem.metadata()


# -- payment flow --------------------------------------------------------------------------------------------

def _weighted(choices: dict[str, float]) -> str:
    return random.choices(list(choices), weights=list(choices.values()))[0]


_payments_started = itertools.count()
# Every (channel, payer action) pair once first, so even the smoke run's few payments cover them all.
_EVERY_PAIR = [(channel, action) for channel in PAYER_CHANNELS for action in PAYER_ACTIONS]


def payer_choice(index: int) -> tuple[str, str]:
    """The channel and the payer's action for this process's ``index``-th payment: each pair once, then drawn
    with the day's proportions."""
    if index < len(_EVERY_PAIR):
        return _EVERY_PAIR[index]
    return _weighted(PAYER_CHANNELS), _weighted(PAYER_ACTIONS)


def create_payment(stubs: Stubs, world: World, citizen: str) -> tuple[Agency, ppb.CreatePaymentRequest, Any]:
    """The provincial system asks for the dossier's fee (amounts in whole thousands of đồng, so no sandbox
    'magic' amount ever triggers a test-mode misbehaviour): the agency, the request sent and the payment."""
    agency = random.choice(world.agencies)
    fee, charge = random.randint(5, 200) * 1000, random.choice((0, 20_000, 50_000))
    lines = [ppb.FeeLine(kind=ppb.FEE_KIND_PHI, code="P01", name="Phí thẩm định hồ sơ", amount=fee)]
    if charge:
        lines.append(ppb.FeeLine(kind=ppb.FEE_KIND_LE_PHI, code="LP01", name="Lệ phí cấp giấy", amount=charge))
    request = ppb.CreatePaymentRequest(
        idempotency_key=_unique("pay"), dossier_code=_unique(f"HS-{agency.code}"), procedure_code="1.000046",
        payer=ppb.Payer(name=f"Cong dan {citizen[-4:]}", national_id=citizen), fee_lines=lines,
        total_amount=fee + charge, beneficiary=agency.account, description="Phí, lệ phí hồ sơ")
    payment = stubs.payments.CreatePayment(request, metadata=agency.payments.metadata(),
                                           timeout=RPC_TIMEOUT_SECONDS).payment
    return agency, request, payment


def payer_acts(http: requests.Session, environment: Environment, targets: Targets, payment: Any, channel: str,
               action: str) -> bool:
    """The payer, through the sandboxes' payer APIs: VietQR = the banking app scans the code and transfers
    (a declined or abandoned transfer never reaches the collecting bank); other channels = the payer opens the
    channel from the payment page, then pays, fails or walks away. Returns whether the sandbox was told."""
    if channel == "vietqr":
        if action != "pay":
            return False

        def scan() -> None:
            answer = http.post(f"{targets.vietqr_url}/sandbox/scan", json={"qr": payment.vietqr_payload},
                               timeout=HTTP_TIMEOUT_SECONDS)
            answer.raise_for_status()

        timed(environment, "http", "NAPAS sandbox scan + transfer", scan)
        return True

    def open_channel() -> str:
        answer = http.get(f"{targets.payment_url}/pay/{payment.reference}", params={"channel": channel},
                          allow_redirects=False, timeout=HTTP_TIMEOUT_SECONDS)
        if answer.status_code != 302:
            raise RuntimeError(f"payment page answered {answer.status_code}: {answer.text[:200]}")
        return str(answer.headers["Location"])

    location = timed(environment, "http", "payment edge GET /pay?channel", open_channel)
    target = urlsplit(location)
    sandbox = f"{target.scheme}://{target.netloc}"
    if channel == "vnpay":
        # VNPay learns of the order when the payer's browser arrives with the signed URL.
        def arrive() -> None:
            http.get(location, headers={"Accept": "application/json"}, timeout=HTTP_TIMEOUT_SECONDS) \
                .raise_for_status()

        timed(environment, "http", "VNPay sandbox pay URL", arrive)
    if action == "abandon":
        return False

    def act() -> None:
        http.post(f"{sandbox}/sandbox/payments/{payment.reference}/{action}",
                  timeout=HTTP_TIMEOUT_SECONDS).raise_for_status()

    timed(environment, "http", f"sandbox payer {action}", act)
    return True


def payment_flow(stubs: Stubs, world: World, ledger: Ledger, http: requests.Session, environment: Environment,
                 targets: Targets) -> None:
    """One fee: created by the provincial system, acted on by the payer, then polled until its outcome shows
    (the signed callbacks arrive at the receiver meanwhile); a fifth of the systems also list the events."""
    citizen = random.choice(world.citizens)
    agency, request, payment = create_payment(stubs, world, citizen)
    channel, action = payer_choice(next(_payments_started))
    # The amount sent (fee + charge), not the platform's echo of it: the check compares the platform with it.
    ledger.add(PAYMENT, payment_id=payment.id, reference=payment.reference, agency=agency.code, citizen_id=citizen,
               amount=request.total_amount, channel=channel, action=action,
               created_day=datetime.now(VIETNAM).date().isoformat())
    gevent.sleep(random.uniform(0.1, 0.5))  # the payer reads the page before acting
    done = payer_acts(http, environment, targets, payment, channel, action)
    ledger.add(PAYER, payment_id=payment.id, done=done)
    metadata = agency.payments.metadata()
    for _ in range(POLLS if done else 1):
        status = stubs.payments.GetPayment(ppb.GetPaymentRequest(payment_id=payment.id), metadata=metadata,
                                           timeout=RPC_TIMEOUT_SECONDS).payment.status
        if status in FINAL_STATUSES:
            break
        gevent.sleep(POLL_INTERVAL_SECONDS)
    if random.random() < 0.2:
        stubs.payments.ListEvents(ppb.ListEventsRequest(payment_id=payment.id), metadata=metadata,
                                  timeout=RPC_TIMEOUT_SECONDS)

