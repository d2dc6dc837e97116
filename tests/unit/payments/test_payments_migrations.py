"""Migration 0004 on a database that already holds credited payments: each keeps the transactions its events
recorded, so a credit re-reported after the upgrade is recognised and a new one still counts."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from payments_fakes import T0

from payment_service.adapters.repository import SqlUnitOfWork
from payment_service.bootstrap import MIGRATIONS, SPEC
from payment_service.domain import reference
from payment_service.domain.model import (
    BeneficiaryAccount,
    CreditResult,
    EventSource,
    FeeKind,
    FeeLine,
    Payer,
    Payment,
    PaymentStatus,
)
from servicekit.db import make_engine, run_migrations, session_factory


def _alembic(engine, target: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["version_table"] = SPEC.version_table
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, target)


def test_a_partly_paid_payment_keeps_its_credits_through_the_upgrade(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'payment.sqlite3'}")
    run_migrations(engine, MIGRATIONS, SPEC.version_table)
    sessions = session_factory(engine)
    payment = Payment.create(
        id="p1", agency_code="HCM", idempotency_key="k", request_hash="h", reference=reference.new_reference(),
        dossier_code="HS-1", procedure_code="1.1", service_code="", payer=Payer("A", "079090001234"),
        fee_lines=[FeeLine(FeeKind.LE_PHI, "LP", "Lệ phí", 185_000)], amount=185_000,
        beneficiary=BeneficiaryAccount("970405", "1"), description="", expires_at=T0 + timedelta(hours=1),
        created_at=T0, updated_at=T0)
    assert payment.record_credit(100_000, "vietqr", "FT1", EventSource.CALLBACK, T0) is CreditResult.PARTIAL
    with SqlUnitOfWork(sessions) as uow:
        uow.payments.add(payment, "2026-03-02")
        uow.commit()
    # The database as it was before 0004 (its events are all it knew of FT1), then the upgrade.
    _alembic(engine, "0003", down=True)
    _alembic(engine, "head")
    with SqlUnitOfWork(sessions) as uow:
        upgraded = uow.payments.get("p1")
    assert upgraded is not None and upgraded.credited == ["vietqr/FT1"]
    assert upgraded.record_credit(100_000, "vietqr", "FT1", EventSource.STATUS_QUERY, T0) is CreditResult.DUPLICATE
    assert upgraded.record_credit(85_000, "vietqr", "FT2", EventSource.CALLBACK, T0) is CreditResult.APPLIED
    assert upgraded.status is PaymentStatus.SUCCEEDED and upgraded.paid_amount == 185_000
    engine.dispose()
