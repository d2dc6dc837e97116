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
    # Each payment already credited gets the transactions its events recorded (a partial VietQR payment has one
    # event per credit): an unnamed key for a transaction that was never named would swallow the next real one.
    payments = sa.table('payments', sa.column('id', sa.String), sa.column('connector_code', sa.String),
                        sa.column('paid_amount', sa.BigInteger), sa.column('credited', sa.JSON))
    events = sa.table('payment_events', sa.column('payment_id', sa.String), sa.column('sequence', sa.Integer),
                      sa.column('type', sa.String), sa.column('data', sa.JSON))
    connection = op.get_bind()
    credited = connection.execute(sa.select(payments.c.id, payments.c.connector_code)
                                  .where(payments.c.paid_amount > 0)).all()
    for payment_id, connector_code in credited:
        keys: list[str] = []
        for (data,) in connection.execute(
                sa.select(events.c.data).where(events.c.payment_id == payment_id, events.c.type.in_(
                    ['payment.partially_paid', 'payment.succeeded', 'payment.late_success']))
                .order_by(events.c.sequence)):
            key = f"{data.get('connector') or connector_code}/{data.get('provider_reference') or ''}"
            if key not in keys:
                keys.append(key)
        connection.execute(payments.update().where(payments.c.id == payment_id).values(credited=keys))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_column('credited')
