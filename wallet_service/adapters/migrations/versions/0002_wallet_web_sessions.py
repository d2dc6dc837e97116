"""Web sessions of the citizen's pages move to the database, so every replica of the edge serves every browser.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 21:55:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('web_sessions',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('csrf_token', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('last_seen', sa.Float(), nullable=False),
    sa.Column('data', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id_hash'))
    op.create_index('ix_web_sessions_last_seen', 'web_sessions', ['last_seen'])


def downgrade() -> None:
    op.drop_index('ix_web_sessions_last_seen', table_name='web_sessions')
    op.drop_table('web_sessions')
