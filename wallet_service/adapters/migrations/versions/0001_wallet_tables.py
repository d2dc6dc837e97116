"""Wallet tables: types, issuer keys, blobs, documents, shares, requests, access log

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22 16:23:52.442671
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('wallet_access_log',
    sa.Column('citizen_id', sa.String(length=12), nullable=False),
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('actor_subject', sa.String(length=128), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('on_behalf_of', sa.String(length=128), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('share_id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('dossier_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('previous_hash', sa.String(length=64), nullable=False),
    sa.Column('entry_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('citizen_id', 'sequence')
    )
    with op.batch_alter_table('wallet_access_log', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_access_log_document', ['citizen_id', 'document_id'], unique=False)

    op.create_table('wallet_blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    op.create_table('wallet_document_requests',
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('citizen_id', sa.String(length=12), nullable=False),
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('requested_by', sa.String(length=128), nullable=False),
    sa.Column('type_codes', sa.JSON(), nullable=False),
    sa.Column('dossier_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=500), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('share_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('request_id'),
    sa.UniqueConstraint('agency_code', 'idempotency_key', name='uq_wallet_requests_idempotency')
    )
    with op.batch_alter_table('wallet_document_requests', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_requests_agency', ['agency_code', 'created_at'], unique=False)
        batch_op.create_index('ix_wallet_requests_citizen', ['citizen_id', 'created_at'], unique=False)

    op.create_table('wallet_document_types',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('definition', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('wallet_issuer_keys',
    sa.Column('key_id', sa.String(length=128), nullable=False),
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('agency_kind', sa.String(length=64), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('public_key_pem', sa.Text(), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key_id')
    )
    with op.batch_alter_table('wallet_issuer_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_issuer_keys_agency_code'), ['agency_code'], unique=False)

    op.create_table('wallet_log_heads',
    sa.Column('citizen_id', sa.String(length=12), nullable=False),
    sa.Column('sequence', sa.BigInteger(), nullable=False),
    sa.Column('head_hash', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('citizen_id')
    )
    op.create_table('wallet_shares',
    sa.Column('share_id', sa.String(length=36), nullable=False),
    sa.Column('citizen_id', sa.String(length=12), nullable=False),
    sa.Column('agency_code', sa.String(length=64), nullable=False),
    sa.Column('dossier_code', sa.String(length=64), nullable=False),
    sa.Column('procedure_code', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=500), nullable=False),
    sa.Column('document_ids', sa.JSON(), nullable=False),
    sa.Column('type_codes', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('use_count', sa.Integer(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('redeemed_document_ids', sa.JSON(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=160), nullable=False),
    sa.PrimaryKeyConstraint('share_id'),
    sa.UniqueConstraint('citizen_id', 'idempotency_key', name='uq_wallet_shares_idempotency')
    )
    with op.batch_alter_table('wallet_shares', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_shares_agency', ['agency_code', 'created_at'], unique=False)
        batch_op.create_index('ix_wallet_shares_citizen', ['citizen_id', 'created_at'], unique=False)

    op.create_table('wallet_documents',
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('citizen_id', sa.String(length=12), nullable=False),
    sa.Column('type_code', sa.String(length=64), nullable=False),
    sa.Column('trust_level', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('content_sha256', sa.String(length=64), nullable=False),
    sa.Column('content_type', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('issuer_agency', sa.String(length=64), nullable=False),
    sa.Column('issuer_key_id', sa.String(length=128), nullable=False),
    sa.Column('signature', sa.LargeBinary(), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('supersedes_document_id', sa.String(length=36), nullable=False),
    sa.Column('superseded_by_document_id', sa.String(length=36), nullable=False),
    sa.Column('stored_status', sa.String(length=16), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=500), nullable=False),
    sa.Column('idempotency_scope', sa.String(length=80), nullable=False),
    sa.Column('idempotency_key', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['content_sha256'], ['wallet_blobs.sha256'], ),
    sa.PrimaryKeyConstraint('document_id'),
    sa.UniqueConstraint('idempotency_scope', 'idempotency_key', name='uq_wallet_documents_idempotency')
    )
    with op.batch_alter_table('wallet_documents', schema=None) as batch_op:
        batch_op.create_index('ix_wallet_documents_citizen', ['citizen_id', 'issued_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_documents_content_sha256'), ['content_sha256'], unique=False)
        batch_op.create_index('ix_wallet_documents_issuer', ['issuer_agency', 'issued_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('wallet_documents', schema=None) as batch_op:
        batch_op.drop_index('ix_wallet_documents_issuer')
        batch_op.drop_index(batch_op.f('ix_wallet_documents_content_sha256'))
        batch_op.drop_index('ix_wallet_documents_citizen')

    op.drop_table('wallet_documents')
    with op.batch_alter_table('wallet_shares', schema=None) as batch_op:
        batch_op.drop_index('ix_wallet_shares_citizen')
        batch_op.drop_index('ix_wallet_shares_agency')

    op.drop_table('wallet_shares')
    op.drop_table('wallet_log_heads')
    with op.batch_alter_table('wallet_issuer_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wallet_issuer_keys_agency_code'))

    op.drop_table('wallet_issuer_keys')
    op.drop_table('wallet_document_types')
    with op.batch_alter_table('wallet_document_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_wallet_requests_citizen')
        batch_op.drop_index('ix_wallet_requests_agency')

    op.drop_table('wallet_document_requests')
    op.drop_table('wallet_blobs')
    with op.batch_alter_table('wallet_access_log', schema=None) as batch_op:
        batch_op.drop_index('ix_wallet_access_log_document')

    op.drop_table('wallet_access_log')
