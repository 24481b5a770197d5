"""indexes for a territory's figures over a period (statistics and digests in SQL)

Revision ID: 0011_s6_national_indexes
Revises: 0010
Create Date: 2026-12-07 08:30:00

`/stats` and the weekly digests read the rows of one period and one territory instead of
the territory's whole history: needs by territory and creation or last update, status
changes, acknowledgements and messages by time, questions and ratings by territory and
time.
"""

from __future__ import annotations

from alembic import op

revision = '0011_s6_national_indexes'
down_revision = '0010'
branch_labels = None
depends_on = None

INDEXES: tuple[tuple[str, str, list[str]], ...] = (
    ('ix_need_territory_created', 'need', ['territory_id', 'created_at']),
    ('ix_need_territory_updated', 'need', ['territory_id', 'updated_at']),
    ('ix_need_event_at', 'need_event', ['at', 'to_status', 'actor', 'need_id']),
    ('ix_need_routing_acknowledged', 'need_routing', ['acknowledged_at', 'need_id']),
    ('ix_need_message_at', 'need_message', ['at']),
    ('ix_kb_query_territory_asked', 'kb_query', ['territory_id', 'asked_at']),
    ('ix_satisfaction_territory_answered', 'satisfaction', ['territory_id', 'answered_at']),
)


def upgrade() -> None:
    """Apply this revision."""
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    """Revert this revision."""
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
