"""updates set aside (unreadable or out of range)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('dead_letter',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('update_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('chat_id', sa.BigInteger(), nullable=True),
    sa.Column('fields', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('received_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table('dead_letter')
