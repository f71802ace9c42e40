"""live_calls: issue 11 (live assist with several worker processes)

Two tables: `live_calls` (one row per call being assisted: who streams it, its agent and team for role
scoping, the worker holding it and an epoch that grows on each take-over, what the supervisor wall shows)
and `live_call_frames` (each accepted input frame in order, so that any worker — or the server after a
restart — rebuilds the call by replaying them).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "live_calls",
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("rulebook_id", sa.Integer(), nullable=True),
        sa.Column("path", sa.String(length=8), nullable=False),
        sa.Column("meta", JSON, nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("stored", sa.Boolean(), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_live_calls_user_id_users"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_live_calls_agent_id_agents"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name=op.f("fk_live_calls_team_id_teams"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("call_id", name=op.f("pk_live_calls")),
    )
    op.create_index("ix_live_calls_status_team", "live_calls", ["status", "team_id"], unique=False)
    op.create_table(
        "live_call_frames",
        sa.Column("call_id", sa.String(length=200), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column("frame", JSON, nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["live_calls.call_id"],
                                name=op.f("fk_live_call_frames_call_id_live_calls"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", "idx", name=op.f("pk_live_call_frames")),
    )


def downgrade() -> None:
    op.drop_table("live_call_frames")
    op.drop_index("ix_live_calls_status_team", table_name="live_calls")
    op.drop_table("live_calls")
