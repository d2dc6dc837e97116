"""Review items record who resolved them and what was done (ResolveReviewItem).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 21:50:00.000000

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=128), server_default='', nullable=False))
        batch_op.add_column(sa.Column('resolution', sa.String(length=500), server_default='', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_column('resolution')
        batch_op.drop_column('resolved_by')
