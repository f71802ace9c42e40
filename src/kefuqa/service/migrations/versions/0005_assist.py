"""assist: issue 11 (live assist: live calls, guidance log) and issue 10 (recordings: manifest attributes) if they need storage

Reserved in order so that work on several issues at once keeps one linear history; a revision with
nothing to do is a no-op.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
