"""outbox: late alerts sent once, a recipient's pending messages found by index

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('late_alerted_at',
                                      storage.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_outbox_recipient_pending',
                              ['recipient', 'delivered_at', 'failed_at', 'id'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_recipient_pending')
        batch_op.drop_column('late_alerted_at')
