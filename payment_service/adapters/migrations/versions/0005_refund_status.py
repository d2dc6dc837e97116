"""Refunds record how they ended (a REFUND_RESULT may report a failed money movement).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 23:20:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0005'
down_revision: str | Sequence[str] | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    # Earlier refunds were taken by their counterpart and no result has been recorded for them: 'accepted'.
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=16), server_default='accepted', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('status')
