"""radar: pairs of needs the animator separated

Revision ID: 0016_radar_apart
Revises: 0015_s3_done_and_next
Create Date: 2026-12-07 14:00:00

`radar_apart` holds two need ids that must never be in one mutualisation group again: the
animator took one need out of a group (`Retirer`), or set a whole group aside (`Écarter`).
Before it, a group set aside came back as soon as one more need joined it (its key, a hash
of its members, changed).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = '0016_radar_apart'
down_revision = '0015_s3_done_and_next'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        'radar_apart',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('territory_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('need_id', sa.Integer(), nullable=False),
        sa.Column('other_id', sa.Integer(), nullable=False),
        sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['need_id'], ['need.id']),
        sa.ForeignKeyConstraint(['other_id'], ['need.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('need_id', 'other_id', name='uq_radar_apart'),
    )
    op.create_index('ix_radar_apart_territory', 'radar_apart', ['territory_id'])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index('ix_radar_apart_territory', table_name='radar_apart')
    op.drop_table('radar_apart')
