"""webhook: an update marked done and its chat's next one found in one round trip

Revision ID: 0015_s3_done_and_next
Revises: 0014_s2_open_needs_messages
Create Date: 2026-12-07 11:30:00

On PostgreSQL, `relais_done_and_next(done_id, chat, done)` marks a stored webhook update
done (its payload emptied) unless it was already, and returns whether it was not (`first`)
and the next update of its chat still to do (`following`), in two statements run by the
server (the second in a fresh snapshot). Nothing on SQLite.
"""

from __future__ import annotations

from alembic import op

revision = '0015_s3_done_and_next'
down_revision = '0014_s2_open_needs_messages'
branch_labels = None
depends_on = None

# A copy, as of this revision, of storage.models.DONE_AND_NEXT_FUNCTION.
_FUNCTION = """
CREATE OR REPLACE FUNCTION relais_done_and_next(done_id bigint, chat bigint, done timestamptz,
                                                OUT first boolean, OUT following bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    UPDATE pending_update SET done_at = done, payload = '{}'
    WHERE update_id = done_id AND done_at IS NULL;
    first := FOUND;
    IF chat IS NOT NULL THEN
        SELECT p.update_id INTO following FROM pending_update p
        WHERE p.chat_id = chat AND p.update_id > done_id AND p.done_at IS NULL
        ORDER BY p.update_id LIMIT 1;
    END IF;
END
$$
"""


def upgrade() -> None:
    """Apply this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION)


def downgrade() -> None:
    """Revert this revision."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS relais_done_and_next(bigint, bigint, timestamptz)")
