"""a territory's open needs counted in an index; territory_id on need_message

Revision ID: 0014_s2_open_needs_messages
Revises: 0013_s12_territory_columns
Create Date: 2026-12-07 11:30:00

`/stats` and the weekly digest count the territory's needs open at the end of the period
and join them to their routings still waiting (late acknowledgements). With only
(territory_id, status), SQLite preferred (territory_id, created_at) and walked the
territory's whole history (27k needs at 500k); (territory_id, status, created_at) answers
the count inside the index and starts the join from the open needs alone. It replaces
(territory_id, status), its prefix.

First responses read the period's messages of the chef de projet to the firm: without the
territory on the row, the whole country's week was read and each message's need looked up.
Messages now carry a copy of their need's territory (kept equal by
`storage.models._territory_copies`), indexed with the time; existing rows are filled from
their need.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0014_s2_open_needs_messages'
down_revision = '0013_s12_territory_columns'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_index('ix_need_territory_status_created', 'need',
                    ['territory_id', 'status', 'created_at'])
    op.drop_index('ix_need_territory_status', table_name='need')
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('territory_id', sqlmodel.sql.sqltypes.AutoString(length=32),
                                      nullable=True))
    op.execute("UPDATE need_message SET territory_id = (SELECT need.territory_id FROM need "
               "WHERE need.id = need_message.need_id)")
    op.create_index('ix_need_message_territory_at', 'need_message',
                    ['territory_id', 'at', 'author_kind', 'to_kind', 'need_id'])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index('ix_need_message_territory_at', table_name='need_message')
    with op.batch_alter_table('need_message', schema=None) as batch_op:
        batch_op.drop_column('territory_id')
    op.create_index('ix_need_territory_status', 'need', ['territory_id', 'status'])
    op.drop_index('ix_need_territory_status_created', table_name='need')
