"""erasure by email waits for a confirmation; received emails say whether they were verified

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 06:30:00

A "supprimer mes données" email used to erase at once, on the word of its From: header.
It now sends a one-time reply address to the address on file and waits for the reply
(`mail_erase_confirm`). Messages of a need's history received by email record whether the
receiving server vouched for their sender (`need_message.verified`).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        'mail_erase_confirm',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('need_id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', storage.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['need_id'], ['need.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash', name='uq_mail_erase_confirm_token'),
    )
    with op.batch_alter_table('mail_erase_confirm', schema=None) as batch_op:
        batch_op.create_index('ix_mail_erase_confirm_need_id', ['need_id'], unique=False)
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verified', sa.Boolean(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.drop_column('verified')
    with op.batch_alter_table('mail_erase_confirm', schema=None) as batch_op:
        batch_op.drop_index('ix_mail_erase_confirm_need_id')
    op.drop_table('mail_erase_confirm')
