"""radar: separations stored as sets of needs, not as pairs

Revision ID: 0017_radar_apart_sets
Revises: 0016_radar_apart
Create Date: 2026-12-07 14:30:00

A group set aside was stored as every pair of its members: 125,000 rows for a group of 500
needs, and as many constraints for the grouping. A separation is now a set of needs, one row
per member (`set_key`, `need_id`): a group set aside is one set, a need taken out is one set
of two with each other member. Existing pairs become sets of two (`pair-<a>-<b>`).
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.types

revision = '0017_radar_apart_sets'
down_revision = '0016_radar_apart'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        'radar_apart_new',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('territory_id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column('set_key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('need_id', sa.Integer(), nullable=False),
        sa.Column('at', storage.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['need_id'], ['need.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('set_key', 'need_id', name='uq_radar_apart_sets'),
    )
    for column in ('need_id', 'other_id'):
        op.execute(
            "INSERT INTO radar_apart_new (territory_id, set_key, need_id, at) "
            "SELECT territory_id, 'pair-' || CAST(need_id AS VARCHAR(12)) || '-' "
            f"|| CAST(other_id AS VARCHAR(12)), {column}, at FROM radar_apart")
    op.drop_index('ix_radar_apart_territory', table_name='radar_apart')
    op.drop_table('radar_apart')
    op.rename_table('radar_apart_new', 'radar_apart')
    op.create_index('ix_radar_apart_territory', 'radar_apart', ['territory_id'])


def downgrade() -> None:
    """Revert this revision (sets of more than two needs become all their pairs)."""
    op.create_table(
        'radar_apart_old',
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
    op.execute(
        "INSERT INTO radar_apart_old (territory_id, need_id, other_id, at) "
        "SELECT a.territory_id, a.need_id, b.need_id, MIN(a.at) FROM radar_apart a "
        "JOIN radar_apart b ON a.set_key = b.set_key AND a.need_id < b.need_id "
        "GROUP BY a.territory_id, a.need_id, b.need_id")
    op.drop_index('ix_radar_apart_territory', table_name='radar_apart')
    op.drop_table('radar_apart')
    op.rename_table('radar_apart_old', 'radar_apart')
    op.create_index('ix_radar_apart_territory', 'radar_apart', ['territory_id'])
