"""pending updates keep their chat, for per-chat order across instances

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('pending_update', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_id', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_pending_update_chat', ['chat_id', 'update_id'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('pending_update', schema=None) as batch_op:
        batch_op.drop_index('ix_pending_update_chat')
        batch_op.drop_column('chat_id')
