"""Walk one fee payment through the running platform (`make run`): token, CreatePayment, VietQR scan, SUCCEEDED."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
import uuid

import grpc
from dvc.identity.v1 import identity_pb2, identity_pb2_grpc
from dvc.payments.v1 import payments_pb2, payments_pb2_grpc

from identity_service.bootstrap import dev_credentials
from servicekit.testing import bearer

PROVINCIAL_CLIENT = "hcm-dossier-system"


def post_json(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",  # noqa: S310
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback sandbox
        return dict(json.loads(response.read()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--identity", default="127.0.0.1:7051")
    parser.add_argument("--payments", default="127.0.0.1:7052")
    parser.add_argument("--collecting-bank", default="http://127.0.0.1:8111", help="VietQR collecting bank sandbox")
    args = parser.parse_args()
    secret = next(c["client_secret"] for c in dev_credentials() if c["client_id"] == PROVINCIAL_CLIENT)
    with grpc.insecure_channel(args.identity) as identity_channel:
        token = identity_pb2_grpc.IdentityServiceStub(identity_channel).IssueClientToken(
            identity_pb2.IssueClientTokenRequest(client_id=PROVINCIAL_CLIENT, client_secret=secret,
                                                 audience="dvc-payments"), timeout=10).tokens.access_token
    print(f"1. {PROVINCIAL_CLIENT} got an access token for dvc-payments from identity")
    with grpc.insecure_channel(args.payments) as channel:
        payments = payments_pb2_grpc.PaymentServiceStub(channel)
        created = payments.CreatePayment(payments_pb2.CreatePaymentRequest(
            idempotency_key=f"demo-{uuid.uuid4().hex}", dossier_code=f"HCM-{int(time.time())}",
            procedure_code="1.000046", service_code="GPLX-DOI",
            payer=payments_pb2.Payer(name="Nguyễn Văn An", national_id="079090001234"),
            fee_lines=[payments_pb2.FeeLine(kind=payments_pb2.FEE_KIND_LE_PHI, code="LP-GPLX",
                                            name="Lệ phí cấp đổi giấy phép lái xe", amount=135_000)],
            total_amount=135_000,
            beneficiary=payments_pb2.BeneficiaryAccount(bank_bin="970405", account="7111000000001")),
            metadata=bearer(token), timeout=10).payment
        print(f"2. CreatePayment -> reference {created.reference}, status "
              f"{payments_pb2.PaymentStatus.Name(created.status)}")
        print(f"   VietQR: {created.vietqr_payload}")
        print(f"   QR image: {created.qr_image_url}")
        post_json(f"{args.collecting_bank}/sandbox/scan", {"qr": created.vietqr_payload})
        print("3. a payer scanned the VietQR in the collecting bank's sandbox app and transferred the amount")
        deadline = time.monotonic() + 30
        status = created.status
        while time.monotonic() < deadline and status != payments_pb2.PAYMENT_STATUS_SUCCEEDED:
            time.sleep(0.5)
            status = payments.GetPayment(payments_pb2.GetPaymentRequest(payment_id=created.id),
                                         metadata=bearer(token), timeout=10).payment.status
        print(f"4. the bank's signed credit notice arrived: status {payments_pb2.PaymentStatus.Name(status)}")
        events = payments.ListEvents(payments_pb2.ListEventsRequest(payment_id=created.id), metadata=bearer(token),
                                     timeout=10)
        for event in events.events:
            print(f"   event #{event.sequence} {event.type} via {payments_pb2.EventSource.Name(event.source)}, "
                  f"agency delivery {payments_pb2.DeliveryState.Name(event.delivery_state)}")
    return 0 if status == payments_pb2.PAYMENT_STATUS_SUCCEEDED else 1


if __name__ == "__main__":
    sys.exit(main())
