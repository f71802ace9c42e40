"""training: issue 12 (training: quizzes, scenarios, drills, assignments, certification)

Reserved in order so that work on several issues at once keeps one linear history; a revision with
nothing to do is a no-op.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
