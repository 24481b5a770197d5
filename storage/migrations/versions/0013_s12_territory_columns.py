"""a territory's week reads its own rows: territory_id on need_event and need_routing

Revision ID: 0013_s12_territory_columns
Revises: 0012_due_indexes
Create Date: 2026-12-07 09:20:00

The weekly figures read the period's status changes and acknowledgements; without the
territory on those rows they read the whole country's week and look up each need's
territory (183 territories: 183 times per weekly job). Each row now carries a copy of its
need's territory (kept equal by `storage.models._territory_copies`), indexed with the time.
Existing rows are filled from their need.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0013_s12_territory_columns'
down_revision = '0012_due_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    for table in ('need_event', 'need_routing'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('territory_id', sqlmodel.sql.sqltypes.AutoString(length=32),
                                          nullable=True))
        op.execute(f"UPDATE {table} SET territory_id = (SELECT need.territory_id FROM need "
                   f"WHERE need.id = {table}.need_id)")
    op.create_index('ix_need_event_territory_at', 'need_event',
                    ['territory_id', 'at', 'to_status', 'actor', 'need_id'])
    op.create_index('ix_need_routing_territory_ack', 'need_routing',
                    ['territory_id', 'acknowledged_at', 'need_id'])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index('ix_need_routing_territory_ack', table_name='need_routing')
    op.drop_index('ix_need_event_territory_at', table_name='need_event')
    for table in ('need_routing', 'need_event'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('territory_id')
