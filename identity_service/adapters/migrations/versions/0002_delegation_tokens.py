"""Delegation tokens: the access tokens token exchange minted under each delegation, deny-listed when it ends.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('delegation_tokens',
    sa.Column('jti', sa.String(length=64), nullable=False),
    sa.Column('delegation_id', sa.String(length=36), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('jti')
    )
    with op.batch_alter_table('delegation_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delegation_tokens_delegation_id'), ['delegation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_delegation_tokens_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('delegation_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delegation_tokens_expires_at'))
        batch_op.drop_index(batch_op.f('ix_delegation_tokens_delegation_id'))

    op.drop_table('delegation_tokens')
