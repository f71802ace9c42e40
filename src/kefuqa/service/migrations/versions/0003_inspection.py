"""inspection: issue 13 (inspection program: plans, assignments, calibration, coaching, search, saved searches)

The transcript search index: `call_texts` holds each call's utterances as one text, kept by triggers on
`conversations` (insert, and update of `data`; a deleted call takes its text with it by the foreign key).
SQLite indexes it with an FTS5 table using the trigram tokenizer (external content, kept by triggers);
PostgreSQL with a GIN index of pg_trgm (the extension is created here when missing).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

SQLITE_TEXT = ("(SELECT coalesce(group_concat(json_extract(u.value, '$.text'), char(10)), '') "
               "FROM json_each(new.data, '$.utterances') AS u)")

SQLITE_UP = [
    "CREATE VIRTUAL TABLE call_texts_fts USING fts5(body, content='call_texts', content_rowid='conversation_id', "
    "tokenize='trigram')",
    "CREATE TRIGGER call_texts_ai AFTER INSERT ON call_texts BEGIN "
    "INSERT INTO call_texts_fts(rowid, body) VALUES (new.conversation_id, new.body); END",
    "CREATE TRIGGER call_texts_ad AFTER DELETE ON call_texts BEGIN "
    "INSERT INTO call_texts_fts(call_texts_fts, rowid, body) VALUES ('delete', old.conversation_id, old.body); END",
    "CREATE TRIGGER call_texts_au AFTER UPDATE ON call_texts BEGIN "
    "INSERT INTO call_texts_fts(call_texts_fts, rowid, body) VALUES ('delete', old.conversation_id, old.body); "
    "INSERT INTO call_texts_fts(rowid, body) VALUES (new.conversation_id, new.body); END",
    f"CREATE TRIGGER conversations_text_ai AFTER INSERT ON conversations BEGIN "
    f"INSERT INTO call_texts(conversation_id, body) VALUES (new.id, {SQLITE_TEXT}); END",
    f"CREATE TRIGGER conversations_text_au AFTER UPDATE OF data ON conversations BEGIN "
    f"UPDATE call_texts SET body = {SQLITE_TEXT} WHERE conversation_id = new.id; END",
    "INSERT INTO call_texts(conversation_id, body) SELECT c.id, (SELECT coalesce(group_concat("
    "json_extract(u.value, '$.text'), char(10)), '') FROM json_each(c.data, '$.utterances') AS u) "
    "FROM conversations AS c",
]
SQLITE_DOWN = [
    "DROP TRIGGER IF EXISTS conversations_text_au", "DROP TRIGGER IF EXISTS conversations_text_ai",
    "DROP TRIGGER IF EXISTS call_texts_au", "DROP TRIGGER IF EXISTS call_texts_ad",
    "DROP TRIGGER IF EXISTS call_texts_ai", "DROP TABLE IF EXISTS call_texts_fts",
]

PG_TEXT = ("coalesce((SELECT string_agg(u.value->>'text', E'\\n' ORDER BY u.ordinality) "
           "FROM jsonb_array_elements(CASE WHEN jsonb_typeof({data}->'utterances') = 'array' "
           "THEN {data}->'utterances' ELSE '[]'::jsonb END) WITH ORDINALITY AS u), '')")
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION kefuqa_call_text() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO call_texts (conversation_id, body) VALUES (NEW.id, {PG_TEXT.format(data="NEW.data")})
  ON CONFLICT (conversation_id) DO UPDATE SET body = EXCLUDED.body;
  RETURN NULL;
END $$
"""


def _pg_up() -> None:
    bind = op.get_bind()
    # pg_trgm goes to `public` when there is one (it outlives any one schema); else the current schema
    has_public = bind.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = 'public'")).first()
    present = bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first()
    if not present:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm" + (" SCHEMA public" if has_public else ""))
    schema = bind.execute(sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_trgm'")).scalar_one()
    op.execute(f'CREATE INDEX ix_call_texts_body_trgm ON call_texts USING gin (body "{schema}".gin_trgm_ops)')
    op.execute(PG_FUNCTION)
    op.execute("CREATE TRIGGER conversations_text AFTER INSERT OR UPDATE OF data ON conversations "
               "FOR EACH ROW EXECUTE FUNCTION kefuqa_call_text()")
    op.execute(f"INSERT INTO call_texts (conversation_id, body) SELECT c.id, {PG_TEXT.format(data='c.data')} "
               "FROM conversations AS c")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "call_texts",
        sa.Column("conversation_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_call_texts_conversation_id_conversations"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_call_texts")),
    )
    op.create_table(
        "saved_searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("query", sa.String(length=2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_saved_searches_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_searches")),
    )
    op.create_index(op.f("ix_saved_searches_user_id"), "saved_searches", ["user_id"], unique=False)
    op.create_table(
        "review_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("week_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("summary", JSON, nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_review_plans_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_plans")),
    )
    op.create_table(
        "review_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_review_assignments_conversation_id_conversations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["inspector_id"], ["users.id"], name=op.f("fk_review_assignments_inspector_id_users")),
        sa.ForeignKeyConstraint(["plan_id"], ["review_plans.id"], name=op.f("fk_review_assignments_plan_id_review_plans"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_assignments")),
        sa.UniqueConstraint("plan_id", "conversation_id", name="uq_review_assignments_plan_call"),
    )
    op.create_index(op.f("ix_review_assignments_conversation_id"), "review_assignments", ["conversation_id"],
                    unique=False)
    op.create_index("ix_review_assignments_inspector_status", "review_assignments", ["inspector_id", "status"],
                    unique=False)
    op.create_index(op.f("ix_review_assignments_plan_id"), "review_assignments", ["plan_id"], unique=False)
    op.create_table(
        "missed_findings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("utterance", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_missed_findings_conversation_id_conversations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_missed_findings_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_missed_findings")),
    )
    op.create_index(op.f("ix_missed_findings_conversation_id"), "missed_findings", ["conversation_id"], unique=False)
    op.create_index(op.f("ix_missed_findings_rule"), "missed_findings", ["rule"], unique=False)
    op.create_table(
        "calibration_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("call_ids", JSON, nullable=False),
        sa.Column("inspector_ids", JSON, nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_calibration_sessions_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_sessions")),
    )
    op.create_table(
        "calibration_verdicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("inspector_id", sa.Integer(), nullable=False),
        sa.Column("rules", JSON, nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_calibration_verdicts_conversation_id_conversations"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["inspector_id"], ["users.id"], name=op.f("fk_calibration_verdicts_inspector_id_users")),
        sa.ForeignKeyConstraint(["session_id"], ["calibration_sessions.id"],
                                name=op.f("fk_calibration_verdicts_session_id_calibration_sessions"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calibration_verdicts")),
        sa.UniqueConstraint("session_id", "conversation_id", "inspector_id",
                            name="uq_calibration_verdicts_session_call_inspector"),
    )
    op.create_index(op.f("ix_calibration_verdicts_session_id"), "calibration_verdicts", ["session_id"], unique=False)
    op.create_table(
        "coaching_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("agent_id", sa.Integer(), nullable=True),
        sa.Column("rule", sa.String(length=32), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_coaching_items_agent_id_agents")),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"],
                                name=op.f("fk_coaching_items_conversation_id_conversations"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_coaching_items_created_by_users")),
        sa.ForeignKeyConstraint(["finding_id"], ["findings.id"], name=op.f("fk_coaching_items_finding_id_findings"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coaching_items")),
    )
    op.create_index(op.f("ix_coaching_items_agent_id"), "coaching_items", ["agent_id"], unique=False)
    op.create_index(op.f("ix_coaching_items_conversation_id"), "coaching_items", ["conversation_id"], unique=False)
    if sqlite:
        for stmt in SQLITE_UP:
            op.execute(stmt)
    else:
        _pg_up()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for stmt in SQLITE_DOWN:
            op.execute(stmt)
    else:
        op.execute("DROP TRIGGER IF EXISTS conversations_text ON conversations")
        op.execute("DROP FUNCTION IF EXISTS kefuqa_call_text()")
        op.execute("DROP INDEX IF EXISTS ix_call_texts_body_trgm")  # pg_trgm stays: other schemas may use it
    op.drop_table("coaching_items")
    op.drop_table("calibration_verdicts")
    op.drop_table("calibration_sessions")
    op.drop_table("missed_findings")
    op.drop_table("review_assignments")
    op.drop_table("review_plans")
    op.drop_table("saved_searches")
    op.drop_table("call_texts")
