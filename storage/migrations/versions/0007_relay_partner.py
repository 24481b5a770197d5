"""relay with partners: the firm's consent per partner, and the Message-ID of need messages

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('need_routing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('relay_direct', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('relay_direct_at',
                                      storage.types.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('message_id', sa.String(length=300), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.drop_column('message_id')
    with op.batch_alter_table('need_routing', schema=None) as batch_op:
        batch_op.drop_column('relay_direct_at')
        batch_op.drop_column('relay_direct')
