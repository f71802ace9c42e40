"""hardening: issue 9 (hardening: appeals decided once, UTC times, login throttling, coverage)

SQLite keeps no offset in a time column, and before this revision a call's time was written as its local
wall-clock time (23:30+08:00 as 23:30). Times are now converted to UTC before they are written
(`models.UTCDateTime`); this revision converts the call times already stored on SQLite, from the
conversation's own `started_at` / `received_at`. PostgreSQL stored instants correctly and is not touched.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _utc(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None  # naive times were taken as UTC then and are now: nothing to convert
    return dt.astimezone(timezone.utc).replace(tzinfo=None)


def upgrade() -> None:
    _coverage()
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    convs = sa.table("conversations", sa.column("id", sa.Integer), sa.column("data", sa.Text),
                     sa.column("call_at", sa.DateTime))
    fixes = []
    for cid, data in bind.execute(sa.select(convs.c.id, convs.c.data)):
        try:
            record = json.loads(data) if isinstance(data, str) else data or {}
        except ValueError:
            continue
        for key in ("started_at", "received_at"):
            if record.get(key):
                at = _utc(record[key])
                if at is not None:
                    fixes.append({"b_id": cid, "b_at": at})
                break
    if fixes:
        bind.execute(convs.update().where(convs.c.id == sa.bindparam("b_id")).values(call_at=sa.bindparam("b_at")),
                     fixes)


def _coverage() -> None:
    """issue 9, item 11: calls whose input let too little of the standard be checked (「未充分质检」) stay out
    of averages and rankings; scores stored before carry no coverage and keep counting."""
    op.add_column("conversations", sa.Column("insufficient", sa.Boolean(), nullable=False,
                                             server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("insufficient")
