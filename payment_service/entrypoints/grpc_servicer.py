"""The dvc.payments.v1.PaymentService servicer: proto in, use case, proto out; errors mapped by interceptors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
from dvc.payments.v1 import payments_pb2 as pb
from dvc.payments.v1 import payments_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from payment_service.adapters.workers import WakeUp
from payment_service.domain import vietqr
from payment_service.domain.commands import CreatePayment, FeeLineInput
from payment_service.domain.model import (
    Agency,
    BeneficiaryAccount,
    ChannelChoice,
    EventSource,
    FeeKind,
    Payment,
    PaymentStatus,
)
from payment_service.domain.reconciliation import MatchStatus
from payment_service.service_layer.access import SCOPE_READ, Caller
from payment_service.service_layer.ports import DeliveryState, EventView, PaymentFilter, ReviewItem
from payment_service.service_layer.qr_images import QrImages
from payment_service.service_layer.reporting import Reporting, Summary
from payment_service.service_layer.services import PaymentServices
from servicekit.auth import current_principal
from servicekit.errors import InvalidArgument, ResourceExhausted
from servicekit.grpc_server import ServiceRegistration

PUBLIC_METHODS = frozenset({"BuildVietQr", "ParseVietQr"})
WATCH_POLL_SECONDS = 1.0

_STATUS_TO_PB = {status: pb.PaymentStatus.Value(f"PAYMENT_STATUS_{status.name}") for status in PaymentStatus}
_STATUS_FROM_PB = {value: status for status, value in _STATUS_TO_PB.items()}
_FEE_TO_PB = {FeeKind.PHI: pb.FEE_KIND_PHI, FeeKind.LE_PHI: pb.FEE_KIND_LE_PHI, FeeKind.OTHER: pb.FEE_KIND_OTHER}
_FEE_FROM_PB = {value: kind.value for kind, value in _FEE_TO_PB.items()}
_SOURCE_TO_PB = {source: pb.EventSource.Value(f"EVENT_SOURCE_{source.name}") for source in EventSource}
_DELIVERY_TO_PB = {DeliveryState.NOT_SENT: pb.DELIVERY_STATE_NOT_SENT,
                   DeliveryState.PENDING: pb.DELIVERY_STATE_PENDING,
                   DeliveryState.DELIVERED: pb.DELIVERY_STATE_DELIVERED,
                   DeliveryState.DEAD: pb.DELIVERY_STATE_DEAD_LETTERED}
_DELIVERY_FROM_PB = {value: state for state, value in _DELIVERY_TO_PB.items()}
_MATCH_TO_PB = {status: pb.ReconciliationStatus.Value(f"RECONCILIATION_STATUS_{status.name}") for status in MatchStatus}
_MATCH_FROM_PB = {value: status for status, value in _MATCH_TO_PB.items()}
_SERVICE_TO_PB = {vietqr.Service.TO_ACCOUNT: pb.VIET_QR_SERVICE_TO_ACCOUNT,
                  vietqr.Service.TO_CARD: pb.VIET_QR_SERVICE_TO_CARD}


def ts(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def from_ts(message: Any, name: str) -> datetime | None:
    if not message.HasField(name):
        return None
    moment: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return moment


def review_item_pb(item: ReviewItem) -> pb.ReviewItem:
    return pb.ReviewItem(id=item.id, connector_code=item.connector_code, notification_id=item.notification_id,
                         amount=item.amount, transfer_note=item.transfer_note,
                         provider_reference=item.provider_reference, reason=item.reason, payment_id=item.payment_id,
                         created_at=ts(item.created_at), agency_code=item.agency_code,
                         resolved_at=ts(item.resolved_at), resolved_by=item.resolved_by,
                         resolution=item.resolution)


def caller() -> Caller:
    principal = current_principal()
    return Caller(subject=principal.subject, agency=principal.agency, scopes=principal.scopes)


class PaymentServicer(payments_pb2_grpc.PaymentServiceServicer):
    """Translates between the contract and the use cases."""

    def __init__(self, services: PaymentServices, reporting: Reporting, qr_images: QrImages, wake: WakeUp,
                 max_watchers: int = 8) -> None:
        self.services = services
        self.reporting = reporting
        self.qr = qr_images
        self.wake = wake
        # Each open stream holds a server worker thread: cap them so streams never starve unary calls.
        self._watch_slots = threading.BoundedSemaphore(max_watchers)

    # -- conversions --------------------------------------------------------------------------------------

    def payment_pb(self, payment: Payment) -> pb.Payment:
        return pb.Payment(
            id=payment.id, agency_code=payment.agency_code, reference=payment.reference,
            dossier_code=payment.dossier_code, procedure_code=payment.procedure_code,
            service_code=payment.service_code,
            payer=pb.Payer(name=payment.payer.name, national_id=payment.payer.national_id),
            fee_lines=[pb.FeeLine(kind=_FEE_TO_PB[line.kind], code=line.code, name=line.name, amount=line.amount)
                       for line in payment.fee_lines],
            total_amount=payment.amount,
            beneficiary=pb.BeneficiaryAccount(bank_bin=payment.beneficiary.bank_bin,
                                              account=payment.beneficiary.account, name=payment.beneficiary.name),
            description=payment.description, status=_STATUS_TO_PB[payment.status],
            created_at=ts(payment.created_at), updated_at=ts(payment.updated_at),
            expires_at=ts(payment.expires_at), paid_at=ts(payment.paid_at), paid_amount=payment.paid_amount,
            refunded_amount=payment.refunded_amount, connector_code=payment.connector_code,
            provider_reference=payment.provider_reference, vietqr_payload=payment.qr_payload,
            qr_image_url=self.services.qr_image_url(payment),
            channels=[pb.ChannelLink(channel=channel, url=url)
                      for channel, url in self.services.channel_links(payment)],
            refund_required="refund_required" in payment.flags, overpaid="overpaid" in payment.flags,
            last_sequence=payment.last_sequence,
        )

    @staticmethod
    def event_pb(view: EventView) -> pb.PaymentEvent:
        event = view.event
        return pb.PaymentEvent(
            event_id=event.event_id, payment_id=event.payment_id, agency_code=event.agency_code,
            sequence=event.sequence, type=event.type.value,
            from_status=_STATUS_TO_PB[event.from_status] if event.from_status else pb.PAYMENT_STATUS_UNSPECIFIED,
            to_status=_STATUS_TO_PB[event.to_status], source=_SOURCE_TO_PB[event.source],
            occurred_at=ts(event.occurred_at), data_json=json.dumps(event.data, ensure_ascii=False, sort_keys=True),
            delivery_state=_DELIVERY_TO_PB[view.delivery], attempts=view.attempts, last_error=view.last_error,
            delivered_at=ts(view.delivered_at), reference=view.reference)

    @staticmethod
    def agency_pb(agency: Agency, now: datetime) -> pb.Agency:
        return pb.Agency(
            code=agency.code, name=agency.name, callback_url=agency.callback_url,
            accounts=[pb.BeneficiaryAccount(bank_bin=a.bank_bin, account=a.account, name=a.name)
                      for a in agency.accounts],
            channels=[pb.ChannelPriority(connector_code=c.connector_code, priority=c.priority)
                      for c in agency.channels],
            active_secret_ids=[s.secret_id for s in agency.active_secrets(now)],
            created_at=ts(agency.created_at), updated_at=ts(agency.updated_at))

    @staticmethod
    def agency_from_pb(message: Any) -> Agency:
        now = datetime.now(UTC)
        return Agency(code=message.code, name=message.name, callback_url=message.callback_url,
                      accounts=[BeneficiaryAccount(a.bank_bin, a.account, a.name) for a in message.accounts],
                      channels=[ChannelChoice(c.connector_code, c.priority) for c in message.channels],
                      secrets=[], created_at=now, updated_at=now)

    @staticmethod
    def summary_pb(summary: Summary) -> pb.ReconciliationSummary:
        counts = summary.counts
        return pb.ReconciliationSummary(
            report_id=summary.report.id, connector_code=summary.report.connector_code,
            settlement_date=summary.report.settlement_date, matched=counts[MatchStatus.MATCHED],
            missing_in_ledger=counts[MatchStatus.MISSING_IN_LEDGER],
            missing_at_bank=counts[MatchStatus.MISSING_AT_BANK],
            amount_mismatch=counts[MatchStatus.AMOUNT_MISMATCH], status_mismatch=counts[MatchStatus.STATUS_MISMATCH],
            resolved=summary.resolved, created_at=ts(summary.report.created_at))

    # -- payments -----------------------------------------------------------------------------------------

    def CreatePayment(self, request: pb.CreatePaymentRequest, context: grpc.ServicerContext,
                      ) -> pb.CreatePaymentResponse:
        who = caller()
        command = CreatePayment(
            agency_code=who.agency, idempotency_key=request.idempotency_key, dossier_code=request.dossier_code,
            procedure_code=request.procedure_code, service_code=request.service_code,
            payer_name=request.payer.name, payer_national_id=request.payer.national_id,
            # An unknown kind passes through as "unspecified" so the validator names it as a field violation.
            fee_lines=tuple(FeeLineInput(_FEE_FROM_PB.get(line.kind, "unspecified"), line.code, line.name,
                                         line.amount) for line in request.fee_lines),
            total_amount=request.total_amount, beneficiary_bin=request.beneficiary.bank_bin,
            beneficiary_account=request.beneficiary.account, expires_at=from_ts(request, "expires_at"),
            description=request.description)
        payment, replayed = self.services.create_payment(who, command)
        return pb.CreatePaymentResponse(payment=self.payment_pb(payment), replayed=replayed)

    def GetPayment(self, request: pb.GetPaymentRequest, context: grpc.ServicerContext) -> pb.GetPaymentResponse:
        payment = self.services.get_payment(caller(), request.payment_id, request.reference)
        return pb.GetPaymentResponse(payment=self.payment_pb(payment))

    def ListPayments(self, request: pb.ListPaymentsRequest, context: grpc.ServicerContext,
                     ) -> pb.ListPaymentsResponse:
        query = PaymentFilter(request.agency_code or None, request.dossier_code,
                              _STATUS_FROM_PB.get(request.status), from_ts(request, "created_after"),
                              from_ts(request, "created_before"))
        payments, token = self.services.list_payments(caller(), query, request.page_token, request.page_size)
        return pb.ListPaymentsResponse(payments=[self.payment_pb(p) for p in payments], next_page_token=token)

    def CancelPayment(self, request: pb.CancelPaymentRequest, context: grpc.ServicerContext,
                      ) -> pb.CancelPaymentResponse:
        payment = self.services.cancel_payment(caller(), request.payment_id, request.reason)
        return pb.CancelPaymentResponse(payment=self.payment_pb(payment))

    def RefundPayment(self, request: pb.RefundPaymentRequest, context: grpc.ServicerContext,
                      ) -> pb.RefundPaymentResponse:
        payment, refund = self.services.refund_payment(caller(), request.payment_id, request.amount,
                                                       request.idempotency_key, request.reason)
        return pb.RefundPaymentResponse(payment=self.payment_pb(payment), refund_id=refund.id,
                                        provider_reference=refund.provider_reference)

    def GetPaymentQr(self, request: pb.GetPaymentQrRequest, context: grpc.ServicerContext,
                     ) -> pb.GetPaymentQrResponse:
        if not request.payment_id:
            raise InvalidArgument.single("payment_id", "is required")
        content_type, image, payload = self.qr.for_caller(caller(), request.payment_id,
                                                          request.format == pb.QR_FORMAT_SVG)
        return pb.GetPaymentQrResponse(content_type=content_type, image=image, payload=payload)

    # -- events -------------------------------------------------------------------------------------------

    def ListEvents(self, request: pb.ListEventsRequest, context: grpc.ServicerContext) -> pb.ListEventsResponse:
        views, token = self.services.list_events(caller(), request.payment_id,
                                                 _DELIVERY_FROM_PB.get(request.delivery_state), request.page_token,
                                                 request.page_size)
        return pb.ListEventsResponse(events=[self.event_pb(v) for v in views], next_page_token=token)

    def RedeliverEvent(self, request: pb.RedeliverEventRequest, context: grpc.ServicerContext,
                       ) -> pb.RedeliverEventResponse:
        if not request.event_id:
            raise InvalidArgument.single("event_id", "is required")
        return pb.RedeliverEventResponse(event=self.event_pb(self.services.redeliver_event(caller(),
                                                                                          request.event_id)))

    def WatchPayments(self, request: pb.WatchPaymentsRequest, context: grpc.ServicerContext,
                      ) -> Iterator[pb.WatchPaymentsResponse]:
        who = caller()
        who.require(SCOPE_READ)
        agency = who.agency_filter()
        if request.cursor:
            try:
                cursor = int(request.cursor)
            except ValueError:
                raise InvalidArgument.single("cursor", "is not a cursor this service returned") from None
        else:
            cursor = self.services.latest_cursor(agency)
        if not self._watch_slots.acquire(blocking=False):
            raise ResourceExhausted("too many open WatchPayments streams on this server; retry shortly or use "
                                    "ListEvents", reason="TOO_MANY_STREAMS")
        try:
            while context.is_active():
                seen = self.wake.generation()
                views = self.services.events_after(agency, cursor)
                for view in views:
                    cursor = view.cursor
                    yield pb.WatchPaymentsResponse(event=self.event_pb(view), cursor=str(cursor))
                if not views:
                    self.wake.wait(seen, WATCH_POLL_SECONDS)
        finally:
            self._watch_slots.release()

    # -- VietQR for integrators ---------------------------------------------------------------------------

    def BuildVietQr(self, request: pb.BuildVietQrRequest, context: grpc.ServicerContext) -> pb.BuildVietQrResponse:
        service = vietqr.Service.TO_CARD if request.service == pb.VIET_QR_SERVICE_TO_CARD \
            else vietqr.Service.TO_ACCOUNT
        code = vietqr.VietQr(
            bank_bin=request.bank_bin, account=request.account, service=service, dynamic=request.dynamic,
            amount=request.amount or None, bill_number=request.bill_number or None,
            purpose=request.purpose or None, reference_label=request.reference_label or None,
            merchant_name=request.merchant_name or None, merchant_city=request.merchant_city or None)
        return pb.BuildVietQrResponse(payload=vietqr.build_payload(code))

    def ParseVietQr(self, request: pb.ParseVietQrRequest, context: grpc.ServicerContext) -> pb.ParseVietQrResponse:
        code = vietqr.parse_payload(request.payload)
        return pb.ParseVietQrResponse(
            bank_bin=code.bank_bin, account=code.account, service=_SERVICE_TO_PB[code.service], dynamic=code.dynamic,
            amount=code.amount or 0, bill_number=code.bill_number or "", purpose=code.purpose or "",
            reference_label=code.reference_label or "", merchant_name=code.merchant_name or "",
            merchant_city=code.merchant_city or "")

    # -- operations ---------------------------------------------------------------------------------------

    def GetConnectorHealth(self, request: pb.GetConnectorHealthRequest, context: grpc.ServicerContext,
                           ) -> pb.GetConnectorHealthResponse:
        caller().require(SCOPE_READ)
        return pb.GetConnectorHealthResponse(connectors=[
            pb.ConnectorHealth(code=view.info.code, display_name=view.info.display_name, channel=view.info.channel,
                               available=view.available, supports_refund=view.info.supports_refund,
                               push_notifications=view.info.push_notifications, breaker_state=view.breaker_state,
                               consecutive_failures=view.consecutive_failures,
                               last_error_kind=view.last_error_kind, last_success_at=ts(view.last_success_at))
            for view in self.services.connector_health()])

    def ImportSettlementFile(self, request: pb.ImportSettlementFileRequest, context: grpc.ServicerContext,
                             ) -> pb.ImportSettlementFileResponse:
        summary = self.reporting.import_settlement(caller(), request.connector_code, request.settlement_date,
                                                   request.content, request.idempotency_key)
        return pb.ImportSettlementFileResponse(summary=self.summary_pb(summary))

    def GetReconciliationReport(self, request: pb.GetReconciliationReportRequest, context: grpc.ServicerContext,
                                ) -> pb.GetReconciliationReportResponse:
        summary, items, token = self.reporting.report(caller(), request.report_id, request.agency_code,
                                                      _MATCH_FROM_PB.get(request.status), request.page_token,
                                                      request.page_size)
        return pb.GetReconciliationReportResponse(summary=self.summary_pb(summary), next_page_token=token, items=[
            pb.ReconciliationItem(
                status=_MATCH_TO_PB[s.item.status], reference=s.item.reference, agency_code=s.item.agency_code,
                payment_id=s.item.payment_id, ledger_amount=s.item.ledger_amount or 0,
                bank_amount=s.item.bank_amount or 0, ledger_status=s.item.ledger_status,
                bank_status=s.item.bank_status, provider_reference=s.item.provider_reference, note=s.item.note,
                resolved=s.resolved) for s in items])

    def ExportReconciliationReport(self, request: pb.ExportReconciliationReportRequest,
                                   context: grpc.ServicerContext) -> pb.ExportReconciliationReportResponse:
        filename, content = self.reporting.export_csv(caller(), request.report_id, request.agency_code)
        return pb.ExportReconciliationReportResponse(content_type="text/csv; charset=utf-8", filename=filename,
                                                     content=content)

    def GetPaymentStatistics(self, request: pb.GetPaymentStatisticsRequest, context: grpc.ServicerContext,
                             ) -> pb.GetPaymentStatisticsResponse:
        rows, totals = self.reporting.statistics(caller(), request.from_date, request.to_date, request.agency_code)
        return pb.GetPaymentStatisticsResponse(
            rows=[pb.StatisticsRow(day=r.day, agency_code=r.agency_code, procedure_code=r.procedure_code,
                                   channel=r.channel, created_count=r.created, paid_count=r.paid,
                                   paid_amount=r.paid_amount) for r in rows],
            totals=[pb.AgencyDayTotals(day=t.day, agency_code=t.agency_code, created_count=t.created,
                                       paid_count=t.paid, paid_amount=t.paid_amount,
                                       online_payment_rate=t.online_payment_rate) for t in totals])

    def ListReviewItems(self, request: pb.ListReviewItemsRequest, context: grpc.ServicerContext,
                        ) -> pb.ListReviewItemsResponse:
        items, token = self.services.list_review_items(caller(), request.include_resolved, request.page_token,
                                                       request.page_size)
        return pb.ListReviewItemsResponse(next_page_token=token, items=[review_item_pb(item) for item in items])

    def ResolveReviewItem(self, request: pb.ResolveReviewItemRequest, context: grpc.ServicerContext,
                          ) -> pb.ResolveReviewItemResponse:
        item = self.services.resolve_review_item(caller(), request.id, request.resolution)
        return pb.ResolveReviewItemResponse(item=review_item_pb(item))

    # -- agencies -----------------------------------------------------------------------------------------

    def RegisterAgency(self, request: pb.RegisterAgencyRequest, context: grpc.ServicerContext,
                       ) -> pb.RegisterAgencyResponse:
        agency, secret, secret_id = self.services.register_agency(caller(), self.agency_from_pb(request),
                                                                  request.idempotency_key)
        return pb.RegisterAgencyResponse(agency=self.agency_pb(agency, self.services.clock.now()),
                                         callback_secret=secret, callback_secret_id=secret_id)

    def UpdateAgency(self, request: pb.UpdateAgencyRequest, context: grpc.ServicerContext,
                     ) -> pb.UpdateAgencyResponse:
        agency = self.services.update_agency(caller(), self.agency_from_pb(request.agency),
                                             set(request.update_mask.paths))
        return pb.UpdateAgencyResponse(agency=self.agency_pb(agency, self.services.clock.now()))

    def RotateCallbackSecret(self, request: pb.RotateCallbackSecretRequest, context: grpc.ServicerContext,
                             ) -> pb.RotateCallbackSecretResponse:
        secret, secret_id, previous_expires_at = self.services.rotate_callback_secret(
            caller(), request.code, request.previous_secret_ttl_seconds)
        return pb.RotateCallbackSecretResponse(callback_secret=secret, callback_secret_id=secret_id,
                                               previous_expires_at=ts(previous_expires_at))


def registration(servicer: PaymentServicer) -> ServiceRegistration:
    return ServiceRegistration(payments_pb2_grpc.add_PaymentServiceServicer_to_server, servicer,
                               pb.DESCRIPTOR.services_by_name["PaymentService"].full_name)
