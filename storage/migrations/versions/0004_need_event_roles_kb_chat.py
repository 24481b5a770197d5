"""need events keep a role and an erasable reference; KB questions keep their chat

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 10:00:00

History lines used to store who acted as free text ("telegram:<id>", "animateur:<name>",
"email:<partner>", "routing"): the firm's Telegram id stayed after it was erased. Events now
keep a role (firm, animator, partner:<id>, system) and, for an animator, a reference that
erasure can blank. Questions to the knowledge base keep the chat they came from, so that
the person's questions go when they ask to be forgotten.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table('need_event', schema=None) as batch_op:
        batch_op.add_column(sa.Column('actor_ref', sqlmodel.sql.sqltypes.AutoString(length=64),
                                      nullable=True))
    with op.batch_alter_table('kb_query', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chat_id', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_kb_query_chat_id', ['chat_id'], unique=False)
    # Old actors to roles. An animator was stored by name: the name becomes the reference
    # (shown as is), the firm's and the email sender's identities are dropped.
    op.execute("UPDATE need_event SET actor_ref = substr(actor, 11), actor = 'animator' "
               "WHERE actor LIKE 'animateur:%'")
    op.execute("UPDATE need_event SET actor = 'firm' WHERE actor LIKE 'telegram:%' "
               "OR actor = 'email' OR actor LIKE 'email:TI-%'")
    op.execute("UPDATE need_event SET actor = 'partner:' || substr(actor, 7) "
               "WHERE actor LIKE 'email:%'")
    op.execute("UPDATE need_event SET actor = 'system' WHERE actor = 'routing'")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('kb_query', schema=None) as batch_op:
        batch_op.drop_index('ix_kb_query_chat_id')
        batch_op.drop_column('chat_id')
    with op.batch_alter_table('need_event', schema=None) as batch_op:
        batch_op.drop_column('actor_ref')
