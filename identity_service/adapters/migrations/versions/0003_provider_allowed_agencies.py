"""Identity providers: the agency codes an official provider may assert (existing entries get none).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table('identity_providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('allowed_agencies', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table('identity_providers', schema=None) as batch_op:
        batch_op.drop_column('allowed_agencies')
