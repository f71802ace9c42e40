"""naive call times: a call time written without an offset is the wall clock of KEFUQA_TIMEZONE

Many PBX exports write `started_at` without an offset (`2026-11-20T23:30:00`). Before 96bf4f6 the workbench
took such a time as UTC, so those calls sit eight hours late (Asia/Shanghai) in lists, date filters, trends
and the daily statistics, while the greeting rule OPN002 read the same time as local. Since then a naive time
is taken in the workbench's zone; this revision moves the calls stored the old way, from the conversation's
own `started_at` (else `received_at`).

Only a call whose `call_at` still equals the naive time read as UTC is moved: calls stored since, already in
the zone, and calls whose time has an offset are left as they are, so the revision is right whichever version
stored a call. The zone is the one the workbench is set up with (`Workbench.setup` passes it; by hand:
KEFUQA_TIMEZONE). The statistics follow through their triggers (migration 0009), in the same transaction.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import context, op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 5000


def _zone() -> ZoneInfo:
    tz = context.config.attributes.get("timezone")
    if not tz:
        from kefuqa.service.config import Settings

        tz = Settings.from_env().timezone
    return ZoneInfo(str(tz))


def _naive(value: object) -> datetime | None:
    """The time as written, when it has no offset (None for an offset, a bad or no value)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt if dt.tzinfo is None else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def upgrade() -> None:
    zone = _zone()
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        started, received = "data->>'started_at'", "data->>'received_at'"
    else:
        started, received = "json_extract(data, '$.started_at')", "json_extract(data, '$.received_at')"
    convs = sa.table("conversations", sa.column("id", sa.Integer), sa.column("call_at", sa.DateTime(timezone=True)))
    query = sa.select(convs.c.id, convs.c.call_at, sa.literal_column(started), sa.literal_column(received))
    fixes = []
    for cid, call_at, start, recv in bind.execute(query.execution_options(yield_per=BATCH)):  # a million calls: read in batches
        written = start if start not in (None, "") else recv  # the same order as records.call_time
        naive = _naive(written)
        if naive is None or call_at is None:
            continue
        local = naive.replace(tzinfo=zone).astimezone(timezone.utc)
        old = naive.replace(tzinfo=timezone.utc)
        if _utc(call_at) == old and local != old:
            fixes.append({"b_id": cid, "b_at": local if bind.dialect.name == "postgresql" else local.replace(tzinfo=None)})
    update = convs.update().where(convs.c.id == sa.bindparam("b_id")).values(call_at=sa.bindparam("b_at"))
    for at in range(0, len(fixes), BATCH):
        bind.execute(update, fixes[at:at + BATCH])


def downgrade() -> None:
    pass  # the old reading was the bug; nothing to restore
