"""periodic passes read only what is due: indexes, and the routing's next follow-up time

Revision ID: 0012_due_indexes
Revises: 0011_s6_national_indexes
Create Date: 2026-12-07 08:10:00

The follow-up, close-or-keep and retention passes select due rows through indexes
instead of reading wide and filtering in Python. A routing now records when the follow-up
must look at it next (`need_routing.followup_at`); routings still waiting for their partner
are due at once, so the first pass after the upgrade sets their real date.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.types

revision = '0012_due_indexes'
down_revision = '0011_s6_national_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('need_routing', schema=None) as batch_op:
        batch_op.add_column(sa.Column('followup_at', storage.types.UTCDateTime(timezone=True),
                                      nullable=True))
    op.execute("UPDATE need_routing SET followup_at = routed_at WHERE status = 'routed' "
               "AND (reminded_at IS NULL OR escalated_at IS NULL)")
    op.create_index('ix_need_routing_followup', 'need_routing', ['followup_at'])
    op.create_index('ix_need_stale_due', 'need', ['status', 'stale_asked_at', 'created_at'])
    op.create_index('ix_need_retention', 'need', ['anonymized_at', 'updated_at'])
    op.create_index('ix_outbox_created', 'outbox', ['created_at'])
    op.create_index('ix_processed_update_at', 'processed_update', ['processed_at'])
    op.create_index('ix_inbound_raw_kept', 'inbound_email', ['received_at'],
                    sqlite_where=sa.text('raw IS NOT NULL'),
                    postgresql_where=sa.text('raw IS NOT NULL'))
    op.create_index('ix_dead_letter_received', 'dead_letter', ['received_at'])
    op.create_index('ix_held_message_created', 'held_message', ['created_at'])


def downgrade() -> None:
    """Revert this revision."""
    for name, table in (('ix_held_message_created', 'held_message'),
                        ('ix_dead_letter_received', 'dead_letter'),
                        ('ix_inbound_raw_kept', 'inbound_email'),
                        ('ix_processed_update_at', 'processed_update'),
                        ('ix_outbox_created', 'outbox'),
                        ('ix_need_retention', 'need'),
                        ('ix_need_stale_due', 'need'),
                        ('ix_need_routing_followup', 'need_routing')):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table('need_routing', schema=None) as batch_op:
        batch_op.drop_column('followup_at')
