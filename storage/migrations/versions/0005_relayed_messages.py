"""relayed messages: channel, recipient, sender and attachment of a need's messages

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel', sa.String(length=16), nullable=False,
                                      server_default='email'))
        batch_op.add_column(sa.Column('to_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('sender_user_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('attachment', sa.JSON(), nullable=True))
        batch_op.create_index('ix_need_message_sender_at', ['sender_user_id', 'at'],
                              unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.drop_index('ix_need_message_sender_at')
        batch_op.drop_column('attachment')
        batch_op.drop_column('sender_user_id')
        batch_op.drop_column('to_kind')
        batch_op.drop_column('channel')
