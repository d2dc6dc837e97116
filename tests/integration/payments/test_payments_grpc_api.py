"""PaymentService over real gRPC on PostgreSQL: create, bad input with field details, agency isolation per RPC."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import grpc
import pytest
import zxingcpp
from dvc.payments.v1 import payments_pb2 as pb
from google.protobuf import field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from payments_it import Platform, create_request
from PIL import Image

from payment_service.domain.connector import ConnectorStatus, InboundNotification, NotificationKind, SettlementLine
from payment_service.domain.vietqr import parse_payload


def _details(error: grpc.RpcError) -> tuple[str, set[str]]:
    """The ErrorInfo reason and the BadRequest field names of a failed call."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    reason, fields = "", set()
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields = {violation.field for violation in bad.field_violations}
    return reason, fields


def _fails(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value  # type: ignore[return-value]


def _count(platform: Platform, agency: str = "HCM", **query: Any) -> int:
    listed = platform.stub.ListPayments(pb.ListPaymentsRequest(agency_code=agency, page_size=500, **query),
                                        metadata=platform.admin())
    return len(listed.payments)


def _key() -> str:
    return f"it-{uuid.uuid4().hex}"


def test_create_returns_reference_vietqr_payload_channels_and_a_lazily_rendered_qr(platform: Platform) -> None:
    response = platform.stub.CreatePayment(create_request(_key()), metadata=platform.token())
    payment = response.payment
    assert not response.replayed and payment.status == pb.PAYMENT_STATUS_CREATED
    assert len(payment.reference) <= 25 and payment.reference.isalnum()
    decoded = parse_payload(payment.vietqr_payload)
    assert (decoded.bank_bin, decoded.amount, decoded.bill_number) == ("970405", 185_000, payment.reference)
    assert {link.channel for link in payment.channels} == {"vietqr", "bank"}
    fetched = platform.stub.GetPayment(pb.GetPaymentRequest(reference=payment.reference), metadata=platform.token())
    assert fetched.payment.id == payment.id and fetched.payment.total_amount == 185_000
    image = platform.stub.GetPaymentQr(pb.GetPaymentQrRequest(payment_id=payment.id), metadata=platform.token())
    assert image.content_type == "image/png" and image.payload == payment.vietqr_payload
    svg = platform.stub.GetPaymentQr(pb.GetPaymentQrRequest(payment_id=payment.id, format=pb.QR_FORMAT_SVG),
                                     metadata=platform.token())
    assert svg.image.startswith(b"<svg")
    import io
    [decoded_png] = zxingcpp.read_barcodes(Image.open(io.BytesIO(image.image)))
    assert decoded_png.text == payment.vietqr_payload


def test_a_replayed_request_returns_the_same_payment_and_a_changed_one_is_aborted(platform: Platform) -> None:
    key = _key()
    first = platform.stub.CreatePayment(create_request(key), metadata=platform.token())
    again = platform.stub.CreatePayment(create_request(key), metadata=platform.token())
    assert again.replayed and again.payment.id == first.payment.id
    error = _fails(lambda: platform.stub.CreatePayment(create_request(key, dossier_code="HS-OTHER"),
                                                       metadata=platform.token()))
    assert error.code() == grpc.StatusCode.ABORTED
    assert _details(error)[0] == "IDEMPOTENCY_KEY_REUSED"


def _future(**delta: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.now(UTC) + timedelta(**delta))
    return stamp


BAD_REQUESTS: dict[str, tuple[dict[str, Any], set[str]]] = {
    "missing dossier": ({"dossier_code": ""}, {"dossier_code"}),
    "missing procedure": ({"procedure_code": ""}, {"procedure_code"}),
    "bad national id": ({"payer": pb.Payer(name="A", national_id="123")}, {"payer.national_id"}),
    "total mismatch": ({"total_amount": 1}, {"total_amount"}),
    "negative amount": ({"fee_lines": [pb.FeeLine(kind=pb.FEE_KIND_PHI, code="P", name="P", amount=-1)],
                         "total_amount": -1}, {"fee_lines[0].amount", "total_amount"}),
    "oversized amount": ({"fee_lines": [pb.FeeLine(kind=pb.FEE_KIND_PHI, code="P", name="P", amount=10**13)],
                          "total_amount": 10**13}, {"fee_lines[0].amount", "total_amount"}),
    "unspecified kind": ({"fee_lines": [pb.FeeLine(code="P", name="P", amount=185_000)]}, {"fee_lines[0].kind"}),
    "unknown account": ({"beneficiary": pb.BeneficiaryAccount(bank_bin="970405", account="000")},
                        {"beneficiary.account"}),
    "expired": ({"expires_at": _future(minutes=-1)}, {"expires_at"}),
    "missing key": ({"idempotency_key": ""}, {"idempotency_key"}),
    # Valid UTF-8, but not XML 1.0 text: the e-receipt could never be read back.
    "payer name not xml": ({"payer": pb.Payer(name="Trần\uffffBình", national_id="001190004321")}, {"payer.name"}),
    "fee name not xml": ({"fee_lines": [pb.FeeLine(kind=pb.FEE_KIND_PHI, code="P", name="Phí\ufffe", amount=185_000)]},
                         {"fee_lines[0].name"}),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_input_is_invalid_argument_with_field_violations_and_nothing_is_stored(platform: Platform,
                                                                                   case: str) -> None:
    changes, fields = BAD_REQUESTS[case]
    dossier = f"HS-BAD-{uuid.uuid4().hex[:8]}"
    error = _fails(lambda: platform.stub.CreatePayment(create_request(_key(), **{"dossier_code": dossier,
                                                                                 **changes}),
                                                       metadata=platform.token()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _details(error)[1] == fields
    assert _count(platform, dossier_code=dossier) == 0


def test_an_unknown_agency_is_not_found_and_nothing_is_stored(platform: Platform) -> None:
    error = _fails(lambda: platform.stub.CreatePayment(create_request(_key()), metadata=platform.token("DN")))
    assert error.code() == grpc.StatusCode.NOT_FOUND and _details(error)[0] == "UNKNOWN_AGENCY"
    assert _count(platform, "DN") == 0


def test_a_missing_or_foreign_token_is_refused(platform: Platform) -> None:
    assert _fails(lambda: platform.stub.GetPayment(pb.GetPaymentRequest(payment_id="x"))).code() \
        == grpc.StatusCode.UNAUTHENTICATED
    reader = platform.token(scopes=("payments.read",))
    error = _fails(lambda: platform.stub.CreatePayment(create_request(_key()), metadata=reader))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_every_payment_rpc_refuses_another_agencys_payment(platform: Platform) -> None:
    payment = platform.stub.CreatePayment(create_request(_key()), metadata=platform.token()).payment
    platform.stub.CancelPayment(pb.CancelPaymentRequest(payment_id=payment.id, reason="test"),
                                metadata=platform.token())
    [event] = [e for e in platform.stub.ListEvents(pb.ListEventsRequest(payment_id=payment.id),
                                                   metadata=platform.token()).events
               if e.type == "payment.cancelled"]
    other = platform.token("HN")
    calls: dict[str, Callable[[], Any]] = {
        "GetPayment": lambda: platform.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.id), metadata=other),
        "GetPayment by reference": lambda: platform.stub.GetPayment(
            pb.GetPaymentRequest(reference=payment.reference), metadata=other),
        "CancelPayment": lambda: platform.stub.CancelPayment(pb.CancelPaymentRequest(payment_id=payment.id),
                                                             metadata=other),
        "RefundPayment": lambda: platform.stub.RefundPayment(
            pb.RefundPaymentRequest(payment_id=payment.id, idempotency_key="r"), metadata=other),
        "GetPaymentQr": lambda: platform.stub.GetPaymentQr(pb.GetPaymentQrRequest(payment_id=payment.id),
                                                           metadata=other),
        "ListEvents": lambda: platform.stub.ListEvents(pb.ListEventsRequest(payment_id=payment.id), metadata=other),
        "RedeliverEvent": lambda: platform.stub.RedeliverEvent(pb.RedeliverEventRequest(event_id=event.event_id),
                                                               metadata=other),
        "ListPayments of HCM": lambda: platform.stub.ListPayments(pb.ListPaymentsRequest(agency_code="HCM"),
                                                                  metadata=other),
        "GetPaymentStatistics of HCM": lambda: platform.stub.GetPaymentStatistics(
            pb.GetPaymentStatisticsRequest(from_date="2026-01-01", to_date="2026-12-31", agency_code="HCM"),
            metadata=other),
        "RotateCallbackSecret": lambda: platform.stub.RotateCallbackSecret(
            pb.RotateCallbackSecretRequest(code="HCM"), metadata=other),
        "UpdateAgency": lambda: platform.stub.UpdateAgency(pb.UpdateAgencyRequest(
            agency=pb.Agency(code="HCM", name="x"), update_mask=field_mask_pb2.FieldMask(paths=["name"])),
            metadata=other),
        "ImportSettlementFile": lambda: platform.stub.ImportSettlementFile(
            pb.ImportSettlementFileRequest(connector_code="fakebank", settlement_date="2026-03-02"),
            metadata=other),
        "ListReviewItems": lambda: platform.stub.ListReviewItems(pb.ListReviewItemsRequest(), metadata=other),
        "ResolveReviewItem": lambda: platform.stub.ResolveReviewItem(
            pb.ResolveReviewItemRequest(id="any", resolution="refunded"), metadata=other),
    }
    for name, call in calls.items():
        error = _fails(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, name
    hn_list = platform.stub.ListPayments(pb.ListPaymentsRequest(), metadata=other)
    assert payment.id not in {p.id for p in hn_list.payments}
    still = platform.stub.GetPayment(pb.GetPaymentRequest(payment_id=payment.id), metadata=platform.token())
    assert still.payment.status == pb.PAYMENT_STATUS_CANCELLED


def test_list_payments_pages_and_filters(platform: Platform) -> None:
    dossier = f"HS-LIST-{uuid.uuid4().hex[:6]}"
    made = [platform.stub.CreatePayment(create_request(_key(), dossier_code=dossier), metadata=platform.token())
            .payment.id for _ in range(5)]
    seen: list[str] = []
    token = ""
    while True:
        page = platform.stub.ListPayments(pb.ListPaymentsRequest(dossier_code=dossier, page_size=2,
                                                                 page_token=token), metadata=platform.token())
        seen.extend(p.id for p in page.payments)
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(made))
    created = platform.stub.ListPayments(pb.ListPaymentsRequest(dossier_code=dossier,
                                                                status=pb.PAYMENT_STATUS_CREATED),
                                         metadata=platform.token())
    assert len(created.payments) == 5


def test_vietqr_build_and_parse_are_public(platform: Platform) -> None:
    built = platform.stub.BuildVietQr(pb.BuildVietQrRequest(bank_bin="970403", account="0011012345678",
                                                            dynamic=True, amount=180_000, bill_number="NPS6869",
                                                            purpose="thanh toan don hang"))
    expected = ("00020101021238570010A00000072701270006970403011300110123456780208QRIBFTTA5303704540618000058"
                "02VN62340107NPS68690819thanh toan don hang63042E2E")
    assert built.payload == expected  # the NAPAS specification's example 6.1.3
    parsed = platform.stub.ParseVietQr(pb.ParseVietQrRequest(payload=expected.replace("2E2E", "2e2e")))
    assert (parsed.bank_bin, parsed.amount, parsed.bill_number) == ("970403", 180_000, "NPS6869")
    error = _fails(lambda: platform.stub.ParseVietQr(pb.ParseVietQrRequest(payload=expected[:-4] + "0000")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_agencies_are_registered_updated_and_rotated_by_admins(platform: Platform) -> None:
    code = f"T{uuid.uuid4().hex[:6].upper()}"
    registered = platform.stub.RegisterAgency(pb.RegisterAgencyRequest(
        code=code, name="Bệnh viện Chợ Rẫy", callback_url="https://cho-ray.example.vn/cb", idempotency_key="r1",
        accounts=[pb.BeneficiaryAccount(bank_bin="970418", account="2222333344")],
        channels=[pb.ChannelPriority(connector_code="fakebank", priority=1)]), metadata=platform.admin())
    assert len(registered.callback_secret) == 64 and registered.agency.active_secret_ids == \
        [registered.callback_secret_id]
    updated = platform.stub.UpdateAgency(pb.UpdateAgencyRequest(
        agency=pb.Agency(code=code, callback_url="https://cho-ray.example.vn/v2"),
        update_mask=field_mask_pb2.FieldMask(paths=["callback_url"])), metadata=platform.admin())
    assert updated.agency.callback_url.endswith("/v2") and updated.agency.name == "Bệnh viện Chợ Rẫy"
    rotated = platform.stub.RotateCallbackSecret(pb.RotateCallbackSecretRequest(code=code),
                                                 metadata=platform.admin())
    assert rotated.callback_secret != registered.callback_secret
    error = _fails(lambda: platform.stub.RegisterAgency(pb.RegisterAgencyRequest(code=code, name="x",
                                                                                 callback_url="https://x.vn"),
                                                        metadata=platform.admin()))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # accounts missing is reported before the clash
    health = platform.stub.GetConnectorHealth(pb.GetConnectorHealthRequest(), metadata=platform.token())
    assert {(c.code, c.available) for c in health.connectors} == {("fakebank", True), ("fakeqr", True)}


def test_an_administrator_resolves_a_review_item_and_the_queue_shows_who_and_what(platform: Platform) -> None:
    note_id = f"credit-{uuid.uuid4().hex[:8]}"
    platform.services.handle_notification("fakeqr", InboundNotification(
        NotificationKind.ACCOUNT_CREDITED, "", ConnectorStatus.SUCCEEDED, 50_000, "FT26030299999", note_id,
        transfer_note="chuyen khoan khong ghi ma"))
    queue = platform.stub.ListReviewItems(pb.ListReviewItemsRequest(page_size=500), metadata=platform.admin())
    item = next(item for item in queue.items if item.notification_id == note_id)
    assert not item.HasField("resolved_at")
    resolved = platform.stub.ResolveReviewItem(pb.ResolveReviewItemRequest(
        id=item.id, resolution="refunded to the sender, FT26030300001"), metadata=platform.admin()).item
    assert (resolved.resolved_by, resolved.resolution) == ("operator", "refunded to the sender, FT26030300001")
    assert resolved.HasField("resolved_at") and resolved.amount == 50_000
    still_open = platform.stub.ListReviewItems(pb.ListReviewItemsRequest(page_size=500), metadata=platform.admin())
    assert item.id not in {entry.id for entry in still_open.items}
    everything = platform.stub.ListReviewItems(pb.ListReviewItemsRequest(page_size=500, include_resolved=True),
                                               metadata=platform.admin())
    listed = next(entry for entry in everything.items if entry.id == item.id)
    assert listed.resolution == resolved.resolution and listed.resolved_by == "operator"
    with pytest.raises(grpc.RpcError) as again:
        platform.stub.ResolveReviewItem(pb.ResolveReviewItemRequest(id=item.id, resolution="matched by hand"),
                                        metadata=platform.admin())
    assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_fetching_a_settlement_file_again_without_a_key_reconciles_what_the_bank_has_now(
        platform: Platform) -> None:
    day = date(2026, 2, 14)                      # a day no other test reconciles
    bank = platform.bank()
    fetch = pb.ImportSettlementFileRequest(connector_code="fakebank", settlement_date=day.isoformat())
    bank.settlements[day] = [SettlementLine("DVCNOTOURS000001", "T1", 5, ConnectorStatus.SUCCEEDED, day)]
    first = platform.stub.ImportSettlementFile(fetch, metadata=platform.admin()).summary
    same = platform.stub.ImportSettlementFile(fetch, metadata=platform.admin()).summary
    assert same.report_id == first.report_id and first.missing_in_ledger == 1
    bank.settlements[day].append(SettlementLine("DVCNOTOURS000002", "T2", 5, ConnectorStatus.SUCCEEDED, day))
    later = platform.stub.ImportSettlementFile(fetch, metadata=platform.admin()).summary
    assert later.report_id != first.report_id and later.missing_in_ledger == 2
