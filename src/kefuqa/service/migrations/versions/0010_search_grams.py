"""search grams: an index of each transcript's characters and character pairs on PostgreSQL, so that a search
word of one or two characters (退, 投诉) is looked up instead of scanned (issue 13)

A trigram index (pg_trgm) cannot serve a word shorter than three characters. `kefuqa_grams(body)` is the
transcript as a stripped tsvector of its single characters and every pair of neighbouring characters (the
'simple' configuration: no stemming, no stop words, lower case), indexed by GIN. A short word is looked up as
the AND of its own characters and pair (`kefuqa_gram_text` builds both sides the same way); the search then
checks the candidates' text for the word itself, so the result is exactly the calls whose transcript contains
it.

SQLite: the FTS5 trigram index gets each transcript with two padding characters (U+0001) at its end, so that
every occurrence of a word of one or two characters begins some indexed trigram; `call_texts_fts_vocab` (an
fts5vocab table of the index's instances) then finds the calls with a trigram that begins with the word by a
range of its terms, and the search checks the candidates' text for the word. The index is refilled here.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PG_UP = [
    # the characters, the pairs starting at odd positions and those starting at even ones, space-separated
    "CREATE OR REPLACE FUNCTION kefuqa_gram_text(t text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ "
    "SELECT regexp_replace(t, '(.)', '\\1 ', 'g') || ' ' || regexp_replace(t, '(..)', '\\1 ', 'g') || ' ' || "
    "regexp_replace(substr(t, 2), '(..)', '\\1 ', 'g') $$",
    # plpgsql, so that it is never inlined and its cost counts: the planner then looks a short word up in the
    # index instead of building every transcript's grams again to test them row by row (250 µs a call)
    "CREATE OR REPLACE FUNCTION kefuqa_grams(t text) RETURNS tsvector LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE "
    "COST 10000 AS $$ BEGIN RETURN strip(to_tsvector('simple'::regconfig, kefuqa_gram_text(t))); END $$",
    "CREATE INDEX ix_call_texts_body_grams ON call_texts USING gin (kefuqa_grams(body))",
    # statistics of the new expression: without them the planner takes a short word for a rare one
    "ANALYZE call_texts",
]
PG_DOWN = ["DROP INDEX IF EXISTS ix_call_texts_body_grams", "DROP FUNCTION IF EXISTS kefuqa_grams(text)",
           "DROP FUNCTION IF EXISTS kefuqa_gram_text(text)"]




def _sqlite_fts(pad: str) -> list[str]:
    """The FTS5 triggers of migration 0003, indexing `body || pad`, and the index refilled that way."""
    return [
        "DROP TRIGGER IF EXISTS call_texts_ai", "DROP TRIGGER IF EXISTS call_texts_ad",
        "DROP TRIGGER IF EXISTS call_texts_au",
        "CREATE TRIGGER call_texts_ai AFTER INSERT ON call_texts BEGIN "
        f"INSERT INTO call_texts_fts(rowid, body) VALUES (new.conversation_id, new.body{pad}); END",
        "CREATE TRIGGER call_texts_ad AFTER DELETE ON call_texts BEGIN "
        "INSERT INTO call_texts_fts(call_texts_fts, rowid, body) VALUES ('delete', old.conversation_id, "
        f"old.body{pad}); END",
        "CREATE TRIGGER call_texts_au AFTER UPDATE ON call_texts BEGIN "
        "INSERT INTO call_texts_fts(call_texts_fts, rowid, body) VALUES ('delete', old.conversation_id, "
        f"old.body{pad}); INSERT INTO call_texts_fts(rowid, body) VALUES (new.conversation_id, new.body{pad}); END",
        "INSERT INTO call_texts_fts(call_texts_fts) VALUES ('delete-all')",
        f"INSERT INTO call_texts_fts(rowid, body) SELECT conversation_id, body{pad} FROM call_texts",
    ]


PAD = " || char(1, 1)"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL maintenance_work_mem = '256MB'")  # the index build at a million calls
        for stmt in PG_UP:
            op.execute(stmt)
        return
    for stmt in _sqlite_fts(PAD):
        op.execute(stmt)
    op.execute("CREATE VIRTUAL TABLE call_texts_fts_vocab USING fts5vocab(call_texts_fts, 'instance')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in PG_DOWN:
            op.execute(stmt)
        return
    op.execute("DROP TABLE IF EXISTS call_texts_fts_vocab")
    for stmt in _sqlite_fts(""):
        op.execute(stmt)
