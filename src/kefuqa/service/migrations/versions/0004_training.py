"""training: issue 12 (training: quizzes, scenarios, drills, assignments, certification)

Two tables: `training_assignments` (a leader assigns a quiz, a scenario or a drill to an agent, due by a date)
and `training_attempts` (each finished attempt with its score, pass, the rules it tripped and its detail).
Certification is derived from attempts (a module's best quiz score against its pass mark).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "training_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_training_assignments_agent_id_agents"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_training_assignments_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_assignments")),
    )
    op.create_index("ix_training_assignments_agent_status", "training_assignments", ["agent_id", "status"],
                    unique=False)
    op.create_table(
        "training_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=False),
        sa.Column("module", sa.String(length=100), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("rules", JSON, nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_training_attempts_agent_id_agents"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["assignment_id"], ["training_assignments.id"],
                                name=op.f("fk_training_attempts_assignment_id_training_assignments"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_training_attempts_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_attempts")),
    )
    op.create_index("ix_training_attempts_agent_created", "training_attempts", ["agent_id", "created_at"],
                    unique=False)
    op.create_index(op.f("ix_training_attempts_user_id"), "training_attempts", ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_training_attempts_user_id"), table_name="training_attempts")
    op.drop_index("ix_training_attempts_agent_created", table_name="training_attempts")
    op.drop_table("training_attempts")
    op.drop_index("ix_training_assignments_agent_status", table_name="training_assignments")
    op.drop_table("training_assignments")
