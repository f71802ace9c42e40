"""The daily statistics rollup (issue 13, migration 0009): what the overview, the trends and the review badge
read instead of a million calls.

Database triggers append signed rows to `stats_calls` and `stats_rules` in the transaction of every write to
`conversations` and `findings` (ingest, re-score, review, appeal, delete, retention — any path, ORM or bulk
SQL). This module:

- fills `stats_zone` with the configured zone's UTC offsets and rebuilds both tables from the stored calls
  (`ensure`, called by `Workbench.setup`: after the migration, or when KEFUQA_TIMEZONE changed; `rebuild` for
  `kefuqa stats rebuild`);
- merges the appended rows into one row per day and key (`compact`), when enough have piled up;
- reads the figures (`summary_rows`, `rule_rows`, `open_findings`).

Every reader sums whatever rows there are, merged or not, so a figure is exact at any moment; merging only
keeps the reads short. Merging is one statement per table on PostgreSQL (DELETE … RETURNING feeding the INSERT
of the sums) and so safe beside concurrent writers and other mergers: it sums exactly the rows it deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, case, delete, false, func, insert, select, text, true
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session as DBSession

from . import cache
from .models import StatsCalls, StatsRules, StatsZone

log = logging.getLogger(__name__)

VOIDED = "('rejected', 'overturned')"
BAND = ("CASE WHEN {s} >= 0 AND {s} < 60 THEN 0 WHEN {s} >= 60 AND {s} < 70 THEN 1 WHEN {s} >= 70 AND {s} < 80 "
        "THEN 2 WHEN {s} >= 80 AND {s} < 90 THEN 3 WHEN {s} >= 90 AND {s} < 101 THEN 4 ELSE -1 END")
COMPACT_AT = 2000  # appended rows that make the next read merge them first
ZONE_FROM, ZONE_TO = 1850, 2150  # years whose offsets stats_zone holds (the first row holds from then back)


# ---- the zone ----------------------------------------------------------------------------------------------------


def zone_offsets(tz: str) -> list[tuple[datetime, int]]:
    """(UTC instant, offset in seconds from then on) for every change of `tz`'s UTC offset, as zoneinfo has it:
    a day-by-day walk, each change then narrowed down to the second."""
    zone = ZoneInfo(tz)

    def offset(at: datetime) -> int:
        delta = at.astimezone(zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    at = datetime(ZONE_FROM, 1, 1, tzinfo=timezone.utc)
    end = datetime(ZONE_TO, 1, 1, tzinfo=timezone.utc)
    current = offset(at)
    out = [(datetime(1, 1, 2, tzinfo=timezone.utc), current)]
    step = timedelta(days=1)
    while at < end:
        nxt = at + step
        now = offset(nxt)
        if now != current:
            lo, hi = at, nxt  # offset(lo) == current, offset(hi) != current
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid <= lo:
                    break
                if offset(mid) == current:
                    lo = mid
                else:
                    hi = mid
            out.append((hi, now))
            current = now
        at = nxt
    return out


def stored_zone(db: DBSession | Any) -> str | None:
    return db.execute(select(StatsZone.zone).limit(1)).scalar()


def _zone(db: DBSession) -> str | None:
    bind = db.get_bind()
    return cache.for_engine(getattr(bind, "engine", bind), "stats_zone", 60.0).get("zone", lambda: stored_zone(db))


def ready(db: DBSession, tz: str) -> bool:
    """Whether the rollup is built for `tz` (else the callers compute from the calls themselves)."""
    return _zone(db) == tz


def built(db: DBSession) -> bool:
    """Whether the rollup is built at all (the open-findings count does not depend on the zone)."""
    return _zone(db) is not None


# ---- rebuilding ----------------------------------------------------------------------------------------------------


def day_sql(dialect: str, at: str) -> str:
    """The local day of the instant `at` by `stats_zone` (as the triggers compute it)."""
    if dialect == "postgresql":
        return f"kefuqa_stats_day({at})"
    return (f"date({at}, (SELECT z.offset_seconds FROM stats_zone AS z WHERE z.starts <= {at} "
            f"ORDER BY z.starts DESC LIMIT 1) || ' seconds')")


def _micro(dialect: str, score: str) -> str:
    if dialect == "postgresql":
        return f"coalesce(round({score}::numeric * 1000000)::bigint, 0)"
    return f"coalesce(CAST(round({score} * 1000000) AS INTEGER), 0)"


def raw_calls_sql(dialect: str) -> str:
    """stats_calls as computed from the calls themselves (the rebuild, and the tests' reference)."""
    return (f"SELECT {day_sql(dialect, 'c.call_at')} AS day, c.team_id, c.score IS NOT NULL AS scored, "
            "coalesce(c.grade, '') AS grade, coalesce(c.fatal, false) AS fatal, "
            f"coalesce(c.insufficient, false) AS insufficient, {BAND.format(s='c.score')} AS band, "
            f"count(*) AS calls, sum({_micro(dialect, 'c.score')}) AS score_micro FROM conversations AS c "
            "GROUP BY 1, 2, 3, 4, 5, 6, 7")


def raw_rules_sql(dialect: str) -> str:
    """stats_rules as computed from the findings themselves."""
    return (f"SELECT {day_sql(dialect, 'c.call_at')} AS day, c.team_id, f.rule, max(f.name) AS name, "
            "count(*) AS findings, sum(CASE WHEN f.status = 'open' THEN 1 ELSE 0 END) AS open "
            "FROM findings AS f JOIN conversations AS c ON c.id = f.conversation_id "
            f"AND c.current_score_id = f.score_id WHERE f.kind = 'finding' AND f.status NOT IN {VOIDED} "
            "GROUP BY 1, 2, 3")


def _rebuild_in(conn: Any, tz: str) -> None:
    dialect = conn.dialect.name
    conn.execute(delete(StatsZone))
    conn.execute(insert(StatsZone), [{"starts": s, "offset_seconds": o, "zone": tz} for s, o in zone_offsets(tz)])
    conn.execute(delete(StatsCalls))
    conn.execute(delete(StatsRules))
    conn.execute(text("INSERT INTO stats_calls (day, team_id, scored, grade, fatal, insufficient, band, calls, "
                      f"score_micro, merged) SELECT r.*, true FROM ({raw_calls_sql(dialect)}) AS r"))
    conn.execute(text("INSERT INTO stats_rules (day, team_id, rule, name, findings, open, merged) "
                      f"SELECT r.*, true FROM ({raw_rules_sql(dialect)}) AS r"))
    if dialect == "postgresql":  # the planner's statistics of the refilled tables (else: the merged index unused)
        conn.execute(text("ANALYZE stats_calls, stats_rules, stats_zone"))


@contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """One rebuild at a time on PostgreSQL (workers starting together after the migration): a session advisory
    lock held on a connection of its own while the check and the rebuild run in their own transactions."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            conn.commit()


LOCK_KEY = 0x6B6571756131  # "kequa1": the rollup's rebuild


def _rebuild(engine: Engine, tz: str) -> None:
    for attempt in range(5):
        try:
            if engine.dialect.name == "postgresql":
                with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
                    _rebuild_in(conn, tz)
            else:
                with engine.begin() as conn:
                    _rebuild_in(conn, tz)
            break
        except DBAPIError as exc:
            if attempt == 4 or "could not serialize" not in str(exc):
                raise
    cache.invalidate(engine)


def rebuild(engine: Engine, tz: str) -> None:
    """Refill stats_zone for `tz` and the rollup from the stored calls, in one transaction. On PostgreSQL it
    runs in one snapshot (REPEATABLE READ): a write committed meanwhile keeps the rows its triggers appended
    and is not counted twice; a conflict with a concurrent merge is retried."""
    with _exclusive(engine):
        _rebuild(engine, tz)


def _current(conn: Any, tz: str) -> bool:
    """Built for `tz`, and not missing the stored calls (every call counts in stats_calls: calls loaded with the
    triggers bypassed, say by bulk SQL with session_replication_role = replica, would leave it empty)."""
    if stored_zone(conn) != tz:
        return False
    has_calls = conn.execute(text("SELECT 1 FROM conversations LIMIT 1")).first() is not None
    return not has_calls or conn.execute(select(StatsCalls.id).limit(1)).first() is not None


def ensure(engine: Engine, tz: str) -> bool:
    """Build the rollup when it was built for another zone or never (after migration 0009), or is empty while
    calls are stored; True when built."""
    with engine.connect() as conn:
        if _current(conn, tz):
            return False
    with _exclusive(engine):
        with engine.connect() as conn:  # again: another process may have built it while this one waited
            zone = stored_zone(conn)
            if _current(conn, tz):
                return False
        log.info("统计汇总按时区 %s 重建（原为 %s）", tz, zone or "空")
        _rebuild(engine, tz)
    return True


# ---- merging -------------------------------------------------------------------------------------------------------

CALL_KEY = "day, team_id, scored, grade, fatal, insufficient, band"
RULE_KEY = "day, team_id, rule"


def _compact_pg(conn: Any) -> int:
    merged = 0
    for table, key, sums, keep in (
            ("stats_calls", CALL_KEY, "sum(calls), sum(score_micro)", "sum(calls) <> 0 OR sum(score_micro) <> 0"),
            ("stats_rules", RULE_KEY, "max(name), sum(findings), sum(open)", "sum(findings) <> 0 OR sum(open) <> 0")):
        cols = key + (", name, findings, open" if table == "stats_rules" else ", calls, score_micro")
        r = conn.execute(text(
            f"WITH days AS (SELECT DISTINCT day FROM {table} WHERE NOT merged AND day IS NOT NULL), "
            f"gone AS (DELETE FROM {table} AS s USING days WHERE s.day = days.day RETURNING s.*), "
            f"ins AS (INSERT INTO {table} ({cols}, merged) SELECT {key}, {sums}, true FROM gone GROUP BY {key} "
            f"HAVING {keep} RETURNING 1) SELECT (SELECT count(*) FROM gone)"))
        merged += int(r.scalar() or 0)
    return merged


def _compact_sqlite(conn: Any) -> int:
    # one writer at a time on SQLite: the three statements see the same rows (the first takes the write lock)
    merged = 0
    for table, key, sums, keep, cols in (
            ("stats_calls", CALL_KEY, "sum(calls), sum(score_micro)", "sum(calls) <> 0 OR sum(score_micro) <> 0",
             "calls, score_micro"),
            ("stats_rules", RULE_KEY, "max(name), sum(findings), sum(open)", "sum(findings) <> 0 OR sum(open) <> 0",
             "name, findings, open")):
        conn.execute(text(f"UPDATE {table} SET merged = 2 WHERE day IN (SELECT day FROM {table} WHERE merged = 0)"))
        conn.execute(text(f"INSERT INTO {table} ({key}, {cols}, merged) SELECT {key}, {sums}, 3 FROM {table} "
                          f"WHERE merged = 2 GROUP BY {key} HAVING {keep}"))
        merged += conn.execute(text(f"DELETE FROM {table} WHERE merged = 2")).rowcount or 0
        conn.execute(text(f"UPDATE {table} SET merged = 1 WHERE merged = 3"))
    return merged


def compact(engine: Engine) -> int:
    """Merge the rows appended since the last merge into one row per day and key; returns the rows merged."""
    with engine.begin() as conn:
        return _compact_pg(conn) if engine.dialect.name == "postgresql" else _compact_sqlite(conn)


def pending(db: DBSession) -> int:
    """Rows appended and not merged yet (counted by the `merged` index, up to a little over COMPACT_AT)."""
    sub = select(StatsCalls.id).where(StatsCalls.merged == false()).limit(COMPACT_AT + 1).subquery()
    sub2 = select(StatsRules.id).where(StatsRules.merged == false()).limit(COMPACT_AT + 1).subquery()
    return int(db.scalar(select(func.count()).select_from(sub)) or 0) + \
        int(db.scalar(select(func.count()).select_from(sub2)) or 0)


def tidy(db: DBSession) -> None:
    """Merge first when many rows piled up since the last merge (a separate short transaction)."""
    if pending(db) > COMPACT_AT:
        bind = db.get_bind()
        try:
            compact(bind.engine if isinstance(bind, Connection) else bind)
        except DBAPIError as exc:  # a busy SQLite or a lock timeout: the figures are exact anyway, merge later
            log.warning("统计汇总合并未完成：%s", exc)


# ---- reading -------------------------------------------------------------------------------------------------------


@dataclass
class CallRow:
    day: date
    team_id: int | None
    grade: str
    fatal: bool
    insufficient: bool
    band: int
    calls: int
    score_micro: int


def call_rows(db: DBSession, first: date, last: date, team_id: int | None = None, *,
              scored: bool | None = True) -> list[CallRow]:
    """The calls of local days `first`..`last` (inclusive), summed per day and key (scored ones by default)."""
    s = StatsCalls
    stmt = select(s.day, s.team_id, s.grade, s.fatal, s.insufficient, s.band, func.sum(s.calls),
                  func.sum(s.score_micro)).where(s.day >= first, s.day <= last)
    if scored is not None:
        stmt = stmt.where(s.scored == (true() if scored else false()))
    if team_id is not None:
        stmt = stmt.where(s.team_id == team_id)
    stmt = stmt.group_by(s.day, s.team_id, s.grade, s.fatal, s.insufficient, s.band).having(func.sum(s.calls) != 0)
    return [CallRow(_as_date(d), t, g or "", bool(f), bool(i), int(b), int(n), int(m or 0))
            for d, t, g, f, i, b, n, m in db.execute(stmt)]


def rule_weeks(db: DBSession, starts: list[date], team_id: int | None = None) -> list[tuple[int, int | None, str,
                                                                                             str | None, int]]:
    """(week index, team, rule, name, findings) of the weeks beginning on `starts` (ascending, 7 days each),
    summed per week, team and rule by the database."""
    r = StatsRules
    week = case(*[(r.day >= d, i) for i, d in reversed(list(enumerate(starts)))], else_=-1).label("week")
    stmt = select(week, r.team_id, r.rule, func.max(r.name), func.sum(r.findings)).where(
        r.day >= starts[0], r.day < starts[-1] + timedelta(days=7))
    if team_id is not None:
        stmt = stmt.where(r.team_id == team_id)
    stmt = stmt.group_by(week, r.team_id, r.rule).having(func.sum(r.findings) != 0)
    return [(int(w), t, rule, name, int(n)) for w, t, rule, name, n in db.execute(stmt)]


def top_rules(db: DBSession, first: date, last: date, team_id: int | None = None,
              limit: int = 10) -> list[dict[str, Any]]:
    r = StatsRules
    total = func.sum(r.findings)
    stmt = select(r.rule, func.max(r.name), total).where(r.day >= first, r.day <= last)
    if team_id is not None:
        stmt = stmt.where(r.team_id == team_id)
    rows = db.execute(stmt.group_by(r.rule).having(total > 0).order_by(total.desc(), r.rule).limit(limit)).all()
    return [{"rule": rule, "name": name, "count": int(n)} for rule, name, n in rows]


def open_findings(db: DBSession) -> int:
    return int(db.scalar(select(func.coalesce(func.sum(StatsRules.open), 0))) or 0)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))
