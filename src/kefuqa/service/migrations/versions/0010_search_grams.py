"""search grams: an index of each transcript's characters and character pairs on PostgreSQL, so that a search
word of one or two characters (退, 投诉) is looked up instead of scanned (issue 13)

A trigram index (pg_trgm) cannot serve a word shorter than three characters. `kefuqa_grams(body)` is the
transcript as a stripped tsvector of its single characters and every pair of neighbouring characters (the
'simple' configuration: no stemming, no stop words, lower case), indexed by GIN. A short word is looked up as
the AND of its own characters and pair (`kefuqa_gram_text` builds both sides the same way); the search then
checks the candidates' text for the word itself, so the result is exactly the calls whose transcript contains
it. SQLite keeps its scan for such words (FTS5's trigram tokenizer has the same limit; a SQLite workbench holds
far fewer calls).

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
    "CREATE OR REPLACE FUNCTION kefuqa_grams(t text) RETURNS tsvector LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ "
    "SELECT strip(to_tsvector('simple'::regconfig, kefuqa_gram_text(t))) $$",
    "CREATE INDEX ix_call_texts_body_grams ON call_texts USING gin (kefuqa_grams(body))",
]
PG_DOWN = ["DROP INDEX IF EXISTS ix_call_texts_body_grams", "DROP FUNCTION IF EXISTS kefuqa_grams(text)",
           "DROP FUNCTION IF EXISTS kefuqa_gram_text(text)"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL maintenance_work_mem = '256MB'")  # the index build at a million calls
        for stmt in PG_UP:
            op.execute(stmt)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for stmt in PG_DOWN:
            op.execute(stmt)
