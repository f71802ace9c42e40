"""stats rollup: daily statistics kept by triggers, for the overview and trends at a million calls (issue 13)

- `stats_calls`: calls per local day, team, grade, 红线, 未充分质检 and score band, with their score sum (in
  millionths of a point, so sums are exact and the same on both databases);
- `stats_rules`: findings of the current scores that no review or appeal voided, per local day, team and rule,
  and how many of them are still open (the review badge);
- `stats_zone`: the UTC offsets of the configured time zone (KEFUQA_TIMEZONE) over time; an instant's local
  day is computed from it by SQL on both databases (SQLite has no time-zone data), so SQLite and PostgreSQL put
  a call on the same day, the day Python's zoneinfo gives.

Triggers on `conversations` (insert, update of the counted columns, delete) and `findings` (insert, update of
status/kind/rule/score, delete) append signed rows in the writing transaction: a write and its statistics
commit or roll back together, and concurrent writers never wait on a shared counter row (no upsert, so no lock
and no deadlock between them). `service.rollup` merges the rows per day now and then and fills the tables for
the calls already stored (`Workbench.setup` does it when the zone in `stats_zone` is not the configured one:
right after this migration, or after KEFUQA_TIMEZONE changed; `kefuqa stats rebuild` does it on demand).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

VOIDED = "('rejected', 'overturned')"
COUNTED = ("call_at", "team_id", "current_score_id", "score", "grade", "fatal", "insufficient")
FINDING_COUNTED = ("status", "kind", "rule", "score_id", "conversation_id")
BAND = ("CASE WHEN {s} >= 0 AND {s} < 60 THEN 0 WHEN {s} >= 60 AND {s} < 70 THEN 1 WHEN {s} >= 70 AND {s} < 80 "
        "THEN 2 WHEN {s} >= 80 AND {s} < 90 THEN 3 WHEN {s} >= 90 AND {s} < 101 THEN 4 ELSE -1 END")


def day_sql(dialect: str, at: str) -> str:
    """The local day of the instant `at` (a column or row field), by the offsets in `stats_zone`."""
    if dialect == "postgresql":
        return f"kefuqa_stats_day({at})"
    return (f"date({at}, (SELECT z.offset_seconds FROM stats_zone AS z WHERE z.starts <= {at} "
            f"ORDER BY z.starts DESC LIMIT 1) || ' seconds')")


def micro_sql(dialect: str, score: str) -> str:
    if dialect == "postgresql":
        return f"coalesce(round({score}::numeric * 1000000)::bigint, 0)"
    return f"coalesce(CAST(round({score} * 1000000) AS INTEGER), 0)"


def call_rows(dialect: str, r: str, sign: str) -> str:
    """The statements that add (`sign` 1) or take away (-1) what conversation row `r` counts."""
    day = day_sql(dialect, f"{r}.call_at")
    return (
        "INSERT INTO stats_calls (day, team_id, scored, grade, fatal, insufficient, band, calls, score_micro, merged) "
        f"SELECT {day}, {r}.team_id, {r}.score IS NOT NULL, coalesce({r}.grade, ''), coalesce({r}.fatal, false), "
        f"coalesce({r}.insufficient, false), {BAND.format(s=f'{r}.score')}, {sign}, "
        f"{sign} * {micro_sql(dialect, f'{r}.score')}, false;\n"
        "INSERT INTO stats_rules (day, team_id, rule, name, findings, open, merged) "
        f"SELECT {day}, {r}.team_id, f.rule, max(f.name), {sign} * count(*), "
        f"{sign} * sum(CASE WHEN f.status = 'open' THEN 1 ELSE 0 END), false FROM findings AS f "
        f"WHERE f.conversation_id = {r}.id AND f.score_id = {r}.current_score_id AND f.kind = 'finding' "
        f"AND f.status NOT IN {VOIDED} GROUP BY f.rule;\n")


def finding_rows(dialect: str, r: str, sign: str) -> str:
    """The statement that adds or takes away finding row `r` (when it belongs to its call's current score)."""
    return (
        "INSERT INTO stats_rules (day, team_id, rule, name, findings, open, merged) "
        f"SELECT {day_sql(dialect, 'c.call_at')}, c.team_id, {r}.rule, {r}.name, {sign}, "
        f"{sign} * (CASE WHEN {r}.status = 'open' THEN 1 ELSE 0 END), false FROM conversations AS c "
        f"WHERE c.id = {r}.conversation_id AND c.current_score_id = {r}.score_id AND {r}.kind = 'finding' "
        f"AND {r}.status NOT IN {VOIDED};\n")


def _changed(cols: tuple[str, ...], dialect: str) -> str:
    op_ = "IS DISTINCT FROM" if dialect == "postgresql" else "IS NOT"
    return " OR ".join(f"OLD.{c} {op_} NEW.{c}" for c in cols)


def _sqlite_up() -> list[str]:
    d = "sqlite"
    return [
        f"CREATE TRIGGER conversations_stats_ai AFTER INSERT ON conversations BEGIN {call_rows(d, 'NEW', '1')} END",
        f"CREATE TRIGGER conversations_stats_au AFTER UPDATE OF {', '.join(COUNTED)} ON conversations "
        f"WHEN {_changed(COUNTED, d)} BEGIN {call_rows(d, 'OLD', '-1')}{call_rows(d, 'NEW', '1')} END",
        # before: the call's findings are still there to be taken away (the foreign keys delete them after)
        f"CREATE TRIGGER conversations_stats_bd BEFORE DELETE ON conversations BEGIN {call_rows(d, 'OLD', '-1')} END",
        f"CREATE TRIGGER findings_stats_ai AFTER INSERT ON findings BEGIN {finding_rows(d, 'NEW', '1')} END",
        f"CREATE TRIGGER findings_stats_au AFTER UPDATE OF {', '.join(FINDING_COUNTED)} ON findings "
        f"WHEN {_changed(FINDING_COUNTED, d)} BEGIN {finding_rows(d, 'OLD', '-1')}{finding_rows(d, 'NEW', '1')} END",
        f"CREATE TRIGGER findings_stats_ad AFTER DELETE ON findings BEGIN {finding_rows(d, 'OLD', '-1')} END",
    ]


SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {t}" for t in (
    "findings_stats_ad", "findings_stats_au", "findings_stats_ai", "conversations_stats_bd", "conversations_stats_au",
    "conversations_stats_ai")]


def _pg_up() -> list[str]:
    d = "postgresql"
    return [
        "CREATE OR REPLACE FUNCTION kefuqa_stats_day(at timestamptz) RETURNS date LANGUAGE sql STABLE AS $$ "
        "SELECT ((at AT TIME ZONE 'UTC') + make_interval(secs => z.offset_seconds))::date FROM stats_zone AS z "
        "WHERE z.starts <= at ORDER BY z.starts DESC LIMIT 1 $$",
        "CREATE OR REPLACE FUNCTION kefuqa_stats_conversations() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"IF TG_OP IN ('UPDATE', 'DELETE') THEN\n{call_rows(d, 'OLD', '-1')}END IF;\n"
        f"IF TG_OP IN ('INSERT', 'UPDATE') THEN\n{call_rows(d, 'NEW', '1')}END IF;\n"
        "IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;\nRETURN NULL;\nEND $$",
        "CREATE OR REPLACE FUNCTION kefuqa_stats_findings() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"IF TG_OP IN ('UPDATE', 'DELETE') THEN\n{finding_rows(d, 'OLD', '-1')}END IF;\n"
        f"IF TG_OP IN ('INSERT', 'UPDATE') THEN\n{finding_rows(d, 'NEW', '1')}END IF;\n"
        "RETURN NULL;\nEND $$",
        "CREATE TRIGGER conversations_stats_ai AFTER INSERT ON conversations FOR EACH ROW "
        "EXECUTE FUNCTION kefuqa_stats_conversations()",
        f"CREATE TRIGGER conversations_stats_au AFTER UPDATE OF {', '.join(COUNTED)} ON conversations FOR EACH ROW "
        f"WHEN ({_changed(COUNTED, d)}) EXECUTE FUNCTION kefuqa_stats_conversations()",
        # before: the call's findings are still there to be taken away (the foreign keys delete them after)
        "CREATE TRIGGER conversations_stats_bd BEFORE DELETE ON conversations FOR EACH ROW "
        "EXECUTE FUNCTION kefuqa_stats_conversations()",
        "CREATE TRIGGER findings_stats_aid AFTER INSERT OR DELETE ON findings FOR EACH ROW "
        "EXECUTE FUNCTION kefuqa_stats_findings()",
        f"CREATE TRIGGER findings_stats_au AFTER UPDATE OF {', '.join(FINDING_COUNTED)} ON findings FOR EACH ROW "
        f"WHEN ({_changed(FINDING_COUNTED, d)}) EXECUTE FUNCTION kefuqa_stats_findings()",
    ]


PG_DOWN = [
    "DROP TRIGGER IF EXISTS findings_stats_au ON findings", "DROP TRIGGER IF EXISTS findings_stats_aid ON findings",
    "DROP TRIGGER IF EXISTS conversations_stats_bd ON conversations",
    "DROP TRIGGER IF EXISTS conversations_stats_au ON conversations",
    "DROP TRIGGER IF EXISTS conversations_stats_ai ON conversations",
    "DROP FUNCTION IF EXISTS kefuqa_stats_findings()", "DROP FUNCTION IF EXISTS kefuqa_stats_conversations()",
    "DROP FUNCTION IF EXISTS kefuqa_stats_day(timestamptz)",
]


def upgrade() -> None:
    op.create_table(
        "stats_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("scored", sa.Boolean(), nullable=False),
        sa.Column("grade", sa.String(length=32), nullable=False),
        sa.Column("fatal", sa.Boolean(), nullable=False),
        sa.Column("insufficient", sa.Boolean(), nullable=False),
        sa.Column("band", sa.Integer(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("score_micro", sa.BigInteger(), nullable=False),
        sa.Column("merged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_calls")),
    )
    op.create_index("ix_stats_calls_day", "stats_calls", ["day", "team_id"], unique=False)
    op.create_index("ix_stats_calls_merged", "stats_calls", ["merged", "day"], unique=False)
    op.create_table(
        "stats_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("open", sa.Integer(), nullable=False),
        sa.Column("merged", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stats_rules")),
    )
    op.create_index("ix_stats_rules_day", "stats_rules", ["day", "team_id"], unique=False)
    op.create_index("ix_stats_rules_merged", "stats_rules", ["merged", "day"], unique=False)
    op.create_table(
        "stats_zone",
        sa.Column("starts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offset_seconds", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("starts", name=op.f("pk_stats_zone")),
    )
    # the tables stay empty here: the zone is the application's setting, so Workbench.setup fills stats_zone
    # and the statistics of the calls already stored (service/rollup.py) right after migrating
    for stmt in _pg_up() if op.get_bind().dialect.name == "postgresql" else _sqlite_up():
        op.execute(stmt)


def downgrade() -> None:
    for stmt in PG_DOWN if op.get_bind().dialect.name == "postgresql" else SQLITE_DOWN:
        op.execute(stmt)
    op.drop_table("stats_zone")
    op.drop_index("ix_stats_rules_merged", table_name="stats_rules")
    op.drop_index("ix_stats_rules_day", table_name="stats_rules")
    op.drop_table("stats_rules")
    op.drop_index("ix_stats_calls_merged", table_name="stats_calls")
    op.drop_index("ix_stats_calls_day", table_name="stats_calls")
    op.drop_table("stats_calls")
