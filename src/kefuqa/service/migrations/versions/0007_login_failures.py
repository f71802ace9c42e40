"""login_failures: login throttling shared by every worker process (issue 9 follow-up)

One row per counter of recent failed logins (a client, a client + account pair, an account), so that
`kefuqa serve --workers N` slows a password-guessing run the same as one process does.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index("ix_login_failures_last", "login_failures", ["last"])


def downgrade() -> None:
    op.drop_index("ix_login_failures_last", table_name="login_failures")
    op.drop_table("login_failures")
