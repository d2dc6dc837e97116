"""Payments list every counterpart transaction counted in paid_amount, so none is ever counted twice.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 23:30:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: str | Sequence[str] | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('credited', sa.JSON(), server_default='[]', nullable=False))
    # A payment already paid was counted once, for the transaction it remembers (partial VietQR credits before
    # this revision are known only as that last one: a re-reported earlier credit would be counted again).
    payments = sa.table('payments', sa.column('id', sa.String), sa.column('connector_code', sa.String),
                        sa.column('provider_reference', sa.String), sa.column('paid_amount', sa.BigInteger),
                        sa.column('credited', sa.JSON))
    connection = op.get_bind()
    rows = connection.execute(sa.select(payments.c.id, payments.c.connector_code, payments.c.provider_reference)
                              .where(payments.c.paid_amount > 0)).all()
    for row in rows:
        connection.execute(payments.update().where(payments.c.id == row.id)
                           .values(credited=[f"{row.connector_code}/{row.provider_reference}"]))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('credited')
