"""E-receipts reach a real wallet: the gRPC issuer streams the signed receipt with a manifest the wallet verifies."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from dvc.wallet.v1 import wallet_pb2, wallet_pb2_grpc

from payment_service.adapters.receipts import Ed25519Signer, StaticTokenSource, WalletReceiptIssuer
from payment_service.domain.model import (
    Agency,
    BeneficiaryAccount,
    EventSource,
    FeeKind,
    FeeLine,
    Payer,
    Payment,
)
from payment_service.service_layer.ports import SignedReceipt
from payment_service.service_layer.services import signed_receipt
from servicekit.config import PlatformSettings
from servicekit.process import RunningService, start
from servicekit.s3 import drop_bucket, make_client
from servicekit.testing import LocalTokenIssuer, bearer, fresh_postgres_url
from wallet_service.bootstrap import SPEC, WalletSettings

ISSUER_AGENCY = "DVC-PAYMENTS"


def paid_receipt(signer: Ed25519Signer, citizen: str, at: datetime) -> SignedReceipt:
    payment = Payment.create(
        id=uuid.uuid4().hex, agency_code="HCM", idempotency_key="k", request_hash="h",
        reference=f"DVC{uuid.uuid4().hex[:13].upper()}", dossier_code="HS-1", procedure_code="1.000046",
        service_code="", payer=Payer("Lê Văn Cường", citizen),
        fee_lines=[FeeLine(FeeKind.LE_PHI, "LP01", "Lệ phí", 135_000), FeeLine(FeeKind.PHI, "P01", "Phí", 50_000)],
        amount=185_000, beneficiary=BeneficiaryAccount("970405", "7111000000001"), description="",
        expires_at=at, created_at=at, updated_at=at)
    payment.record_success(185_000, "vietqr", "FT123", EventSource.CALLBACK, at)
    agency = Agency("HCM", "UBND TP. Hồ Chí Minh", "https://x", [], [], [], at, at)
    return signed_receipt(payment, agency, signer, at)


@pytest.fixture(scope="module")
def wallet(s3_settings: dict[str, str]) -> Iterator[tuple[RunningService, LocalTokenIssuer]]:
    tokens = LocalTokenIssuer()
    settings = WalletSettings(database_url=fresh_postgres_url("paywallet"), s3_endpoint=s3_settings["endpoint"],
                              s3_access_key=s3_settings["access_key"], s3_secret_key=s3_settings["secret_key"],
                              s3_bucket=f"pay-receipts-{uuid.uuid4().hex[:12]}", metrics_port=-1,
                              log_level="WARNING", grpc_port=0, http_port=0)
    running = start(SPEC, settings, PlatformSettings(), verifier=tokens.verifier("dvc-wallet"))
    yield running, tokens
    running.stop(grace_seconds=0.5)
    drop_bucket(make_client(settings.s3_endpoint, settings.s3_access_key, settings.s3_secret_key), settings.s3_bucket)


def test_a_signed_receipt_is_issued_into_the_payers_wallet_once(
        wallet: tuple[RunningService, LocalTokenIssuer]) -> None:
    running, tokens = wallet
    assert running.grpc is not None
    signer = Ed25519Signer.development(ISSUER_AGENCY)
    token = StaticTokenSource(lambda: tokens.mint("payment-service", audience="dvc-wallet", kind="client",
                                                  agency=ISSUER_AGENCY, scopes=("wallet.issue",)))
    issuer = WalletReceiptIssuer(f"127.0.0.1:{running.grpc.port}", token, signer, issuer_agency=ISSUER_AGENCY,
                                 document_type="FEE_RECEIPT")
    citizen = f"0{uuid.uuid4().int % 10**11:011d}"
    receipt = paid_receipt(signer, citizen, datetime(2026, 3, 2, 3, 15, tzinfo=UTC))
    try:
        document_id = issuer.issue(receipt)
        assert document_id and issuer.issue(receipt) == document_id  # the receipt number makes retries safe
    finally:
        issuer.close()
    stub = wallet_pb2_grpc.WalletServiceStub(grpc.insecure_channel(f"127.0.0.1:{running.grpc.port}"))
    document = stub.GetDocument(wallet_pb2.GetDocumentRequest(document_id=document_id),
                                metadata=bearer(tokens.mint(citizen, audience="dvc-wallet", kind="citizen"))).document
    assert document.type_code == "FEE_RECEIPT" and document.issuer_agency == ISSUER_AGENCY
    assert document.metadata["receipt_number"] == receipt.number
    assert document.metadata["amount_vnd"] == "185000"
