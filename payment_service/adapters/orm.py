"""The payment database schema (SQLAlchemy Core), portable between PostgreSQL and SQLite."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime(timezone=True)

agencies = sa.Table(
    "agencies", metadata,
    sa.Column("code", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("callback_url", sa.String(500), nullable=False),
    sa.Column("accounts", sa.JSON, nullable=False),
    sa.Column("channels", sa.JSON, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("idempotency_key", sa.String(128), nullable=False, default=""),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

callback_secrets = sa.Table(
    "callback_secrets", metadata,
    sa.Column("secret_id", sa.String(32), primary_key=True),
    sa.Column("agency_code", sa.String(32), sa.ForeignKey("agencies.code"), nullable=False, index=True),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=True),
)

payments = sa.Table(
    "payments", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("reference", sa.String(25), nullable=False, unique=True),
    sa.Column("dossier_code", sa.String(64), nullable=False),
    sa.Column("procedure_code", sa.String(64), nullable=False),
    sa.Column("service_code", sa.String(64), nullable=False),
    sa.Column("payer_name", sa.String(200), nullable=False),
    sa.Column("payer_national_id", sa.String(12), nullable=False),
    sa.Column("fee_lines", sa.JSON, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("bank_bin", sa.String(6), nullable=False),
    sa.Column("account", sa.String(19), nullable=False),
    sa.Column("beneficiary_name", sa.String(200), nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # Business day (Asia/Ho_Chi_Minh) of creation, so daily statistics group portably without date functions.
    sa.Column("created_day", sa.String(10), nullable=False),
    sa.Column("qr_payload", sa.String(512), nullable=False),
    sa.Column("connector_code", sa.String(32), nullable=False),
    sa.Column("provider_reference", sa.String(64), nullable=False),
    # What the connector's create returned (Ngân Lượng's checkout token), for status queries after a restart.
    sa.Column("checkout_reference", sa.String(128), nullable=False, server_default=""),
    sa.Column("paid_amount", sa.BigInteger, nullable=False),
    sa.Column("refunded_amount", sa.BigInteger, nullable=False),
    sa.Column("paid_at", Timestamp, nullable=True),
    sa.Column("flags", sa.String(200), nullable=False),
    # "connector/transaction id" of every counterpart transaction counted in paid_amount.
    sa.Column("credited", sa.JSON, nullable=False, server_default="[]"),
    sa.Column("last_sequence", sa.Integer, nullable=False),
    sa.Column("last_checked_at", Timestamp, nullable=True),
    sa.UniqueConstraint("agency_code", "idempotency_key"),
    sa.Index(None, "agency_code", "created_at"),
    sa.Index(None, "agency_code", "dossier_code"),
    sa.Index(None, "status", "expires_at"),
    sa.Index(None, "created_day", "agency_code"),
)

payment_events = sa.Table(
    "payment_events", metadata,
    # The global, ever-increasing id is the WatchPayments cursor.
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(32), nullable=False, unique=True),
    sa.Column("payment_id", sa.String(32), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("type", sa.String(40), nullable=False),
    sa.Column("from_status", sa.String(20), nullable=True),
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("source", sa.String(20), nullable=False),
    sa.Column("occurred_at", Timestamp, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.UniqueConstraint("payment_id", "sequence"),
    sa.Index(None, "agency_code", "id"),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("event_id", sa.String(32), nullable=False),
    sa.Column("payment_id", sa.String(32), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", Timestamp, nullable=False),
    sa.Column("last_error", sa.String(500), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("confirmed_at", Timestamp, nullable=False),
    sa.Column("retry_until", Timestamp, nullable=False),
    sa.Column("delivered_at", Timestamp, nullable=True),
    sa.UniqueConstraint("kind", "event_id"),
    sa.Index(None, "status", "next_attempt_at"),
)

inbound_notifications = sa.Table(
    "inbound_notifications", metadata,
    sa.Column("connector_code", sa.String(32), primary_key=True),
    sa.Column("notification_id", sa.String(128), primary_key=True),
    sa.Column("payment_id", sa.String(32), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("received_at", Timestamp, nullable=False),
)

review_items = sa.Table(
    "review_items", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("connector_code", sa.String(32), nullable=False),
    sa.Column("notification_id", sa.String(128), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("transfer_note", sa.String(500), nullable=False),
    sa.Column("provider_reference", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("payment_id", sa.String(32), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp, nullable=True),
    sa.Column("resolved_by", sa.String(128), nullable=False, server_default=""),
    sa.Column("resolution", sa.String(500), nullable=False, server_default=""),
    sa.Index(None, "created_at"),
)

refunds = sa.Table(
    "refunds", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("payment_id", sa.String(32), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("provider_reference", sa.String(64), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, server_default="accepted"),
    sa.UniqueConstraint("payment_id", "idempotency_key"),
)

receipts = sa.Table(
    "receipts", metadata,
    sa.Column("payment_id", sa.String(32), primary_key=True),
    sa.Column("number", sa.String(40), nullable=False, unique=True),
    sa.Column("document", sa.LargeBinary, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

reconciliation_reports = sa.Table(
    "reconciliation_reports", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("connector_code", sa.String(32), nullable=False),
    sa.Column("settlement_date", sa.String(10), nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.UniqueConstraint("connector_code", "idempotency_key"),
)

reconciliation_items = sa.Table(
    "reconciliation_items", metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("report_id", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reference", sa.String(64), nullable=False),
    sa.Column("agency_code", sa.String(32), nullable=False),
    sa.Column("payment_id", sa.String(32), nullable=False),
    sa.Column("ledger_amount", sa.BigInteger, nullable=True),
    sa.Column("bank_amount", sa.BigInteger, nullable=True),
    sa.Column("ledger_status", sa.String(20), nullable=False),
    sa.Column("bank_status", sa.String(20), nullable=False),
    sa.Column("provider_reference", sa.String(64), nullable=False),
    sa.Column("settled_on", sa.String(10), nullable=False),
    sa.Column("note", sa.String(300), nullable=False),
    sa.Column("resolved", sa.Boolean, nullable=False),
    sa.Index(None, "report_id", "agency_code"),
)
