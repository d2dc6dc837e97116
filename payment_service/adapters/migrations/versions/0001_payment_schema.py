"""The payment schema: agencies, payments, events, outbox, notifications, review queue, refunds, receipts.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 16:23:49.431659

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0001'
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('agencies',
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('callback_url', sa.String(length=500), nullable=False),
    sa.Column('accounts', sa.JSON(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_agencies'))
    )
    op.create_table('inbound_notifications',
    sa.Column('connector_code', sa.String(length=32), nullable=False),
    sa.Column('notification_id', sa.String(length=128), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('connector_code', 'notification_id', name=op.f('pk_inbound_notifications'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('event_id', sa.String(length=32), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retry_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox')),
    sa.UniqueConstraint('kind', 'event_id', name=op.f('uq_outbox_kind_event_id'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_status_next_attempt_at'),
                              ['status', 'next_attempt_at'], unique=False)

    op.create_table('payment_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=32), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('from_status', sa.String(length=20), nullable=True),
    sa.Column('to_status', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_payment_events_event_id')),
    sa.UniqueConstraint('payment_id', 'sequence', name=op.f('uq_payment_events_payment_id_sequence'))
    )
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_events_agency_code_id'),
                              ['agency_code', 'id'], unique=False)

    op.create_table('payments',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('reference', sa.String(length=25), nullable=False),
    sa.Column('dossier_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('service_code', sa.String(length=64), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=False),
    sa.Column('payer_national_id', sa.String(length=12), nullable=False),
    sa.Column('fee_lines', sa.JSON(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('bank_bin', sa.String(length=6), nullable=False),
    sa.Column('account', sa.String(length=19), nullable=False),
    sa.Column('beneficiary_name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_day', sa.String(length=10), nullable=False),
    sa.Column('qr_payload', sa.String(length=512), nullable=False),
    sa.Column('connector_code', sa.String(length=32), nullable=False),
    sa.Column('provider_reference', sa.String(length=64), nullable=False),
    sa.Column('paid_amount', sa.BigInteger(), nullable=False),
    sa.Column('refunded_amount', sa.BigInteger(), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('flags', sa.String(length=200), nullable=False),
    sa.Column('last_sequence', sa.Integer(), nullable=False),
    sa.Column('last_checked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('agency_code', 'idempotency_key', name=op.f('uq_payments_agency_code_idempotency_key')),
    sa.UniqueConstraint('reference', name=op.f('uq_payments_reference'))
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_agency_code_created_at'),
                              ['agency_code', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_agency_code_dossier_code'),
                              ['agency_code', 'dossier_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_created_day_agency_code'),
                              ['created_day', 'agency_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_status_expires_at'),
                              ['status', 'expires_at'], unique=False)

    op.create_table('receipts',
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('document', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('payment_id', name=op.f('pk_receipts')),
    sa.UniqueConstraint('number', name=op.f('uq_receipts_number'))
    )
    op.create_table('reconciliation_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('report_id', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('ledger_amount', sa.BigInteger(), nullable=True),
    sa.Column('bank_amount', sa.BigInteger(), nullable=True),
    sa.Column('ledger_status', sa.String(length=20), nullable=False),
    sa.Column('bank_status', sa.String(length=20), nullable=False),
    sa.Column('provider_reference', sa.String(length=64), nullable=False),
    sa.Column('settled_on', sa.String(length=10), nullable=False),
    sa.Column('note', sa.String(length=300), nullable=False),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_items'))
    )
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reconciliation_items_report_id_agency_code'),
                              ['report_id', 'agency_code'], unique=False)

    op.create_table('reconciliation_reports',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('connector_code', sa.String(length=32), nullable=False),
    sa.Column('settlement_date', sa.String(length=10), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reconciliation_reports')),
    sa.UniqueConstraint('connector_code', 'idempotency_key',
                        name=op.f('uq_reconciliation_reports_connector_code_idempotency_key'))
    )
    op.create_table('refunds',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('provider_reference', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refunds')),
    sa.UniqueConstraint('payment_id', 'idempotency_key', name=op.f('uq_refunds_payment_id_idempotency_key'))
    )
    op.create_table('review_items',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('connector_code', sa.String(length=32), nullable=False),
    sa.Column('notification_id', sa.String(length=128), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('transfer_note', sa.String(length=500), nullable=False),
    sa.Column('provider_reference', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=False),
    sa.Column('payment_id', sa.String(length=32), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_review_items'))
    )
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_items_created_at'),
                              ['created_at'], unique=False)

    op.create_table('callback_secrets',
    sa.Column('secret_id', sa.String(length=32), nullable=False),
    sa.Column('agency_code', sa.String(length=32), nullable=False),
    sa.Column('secret', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['agency_code'], ['agencies.code'], name=op.f('fk_callback_secrets_agency_code_agencies')),
    sa.PrimaryKeyConstraint('secret_id', name=op.f('pk_callback_secrets'))
    )
    with op.batch_alter_table('callback_secrets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callback_secrets_agency_code'),
                              ['agency_code'], unique=False)



def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('callback_secrets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callback_secrets_agency_code'))

    op.drop_table('callback_secrets')
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_items_created_at'))

    op.drop_table('review_items')
    op.drop_table('refunds')
    op.drop_table('reconciliation_reports')
    with op.batch_alter_table('reconciliation_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reconciliation_items_report_id_agency_code'))

    op.drop_table('reconciliation_items')
    op.drop_table('receipts')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payments_status_expires_at'))
        batch_op.drop_index(batch_op.f('ix_payments_created_day_agency_code'))
        batch_op.drop_index(batch_op.f('ix_payments_agency_code_dossier_code'))
        batch_op.drop_index(batch_op.f('ix_payments_agency_code_created_at'))

    op.drop_table('payments')
    with op.batch_alter_table('payment_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_events_agency_code_id'))

    op.drop_table('payment_events')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status_next_attempt_at'))

    op.drop_table('outbox')
    op.drop_table('inbound_notifications')
    op.drop_table('agencies')
