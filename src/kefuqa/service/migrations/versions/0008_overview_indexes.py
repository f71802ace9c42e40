"""Indexes for the overview and search at a million calls (issue 13)

- ix_conversations_call_at_stats: the period's calls with every column the overview's statistics group and
  filter by (team, agent, score, grade, 红线, 未充分质检) and the join to the current score's findings, so that
  PostgreSQL reads them from the index alone (an index-only scan of the last 30 days instead of the rows);
- ix_conversations_id_call_at: the order (call_at) of a list of call ids, from the index alone (search orders
  the calls its text index found before reading the page's rows).

Only indexes: nothing to migrate; downgrade drops them.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

STATS = ["call_at", "team_id", "agent_id", "score", "grade", "fatal", "insufficient", "current_score_id", "id"]


def upgrade() -> None:
    op.create_index("ix_conversations_call_at_stats", "conversations", STATS)
    op.create_index("ix_conversations_id_call_at", "conversations", ["id", "call_at"])


def downgrade() -> None:
    op.drop_index("ix_conversations_id_call_at", table_name="conversations")
    op.drop_index("ix_conversations_call_at_stats", table_name="conversations")
