"""hardening: issue 9 (hardening: appeals decided once, UTC times, login throttling, coverage)

Reserved in order so that work on several issues at once keeps one linear history; a revision with
nothing to do is a no-op.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
