"""animators bound by invitation; messages held for animators Telegram could not reach

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 05:34:31.765841

An animator who opens their invitation link (`relais invite`) binds a Telegram account
(animator_binding). A message Telegram refuses for an animator who never opened the bot
is emailed and kept (held_message) until their /start.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('animator_binding',
    sa.Column('territory_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('telegram_user_id', sa.BigInteger(), nullable=False),
    sa.Column('bound_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('territory_id', 'email')
    )
    with op.batch_alter_table('animator_binding', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_animator_binding_telegram_user_id'), ['telegram_user_id'], unique=False)

    op.create_table('held_message',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('need_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', storage.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('shown_at', storage.types.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('email', 'source', name='uq_held_message_source')
    )
    with op.batch_alter_table('held_message', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_message_need_id'), ['need_id'], unique=False)
        batch_op.create_index('ix_held_message_waiting', ['email', 'shown_at'], unique=False)



def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('held_message', schema=None) as batch_op:
        batch_op.drop_index('ix_held_message_waiting')
        batch_op.drop_index(batch_op.f('ix_held_message_need_id'))

    op.drop_table('held_message')
    with op.batch_alter_table('animator_binding', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_animator_binding_telegram_user_id'))

    op.drop_table('animator_binding')
