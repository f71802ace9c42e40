"""inspection: issue 13 (inspection program: plans, assignments, calibration, coaching, search, saved searches)

Reserved in order so that work on several issues at once keeps one linear history; a revision with
nothing to do is a no-op.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
