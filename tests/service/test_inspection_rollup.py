"""The daily statistics rollup (issue 13, migration 0009) on SQLite and PostgreSQL: after every kind of write
— ingest, re-score, review, appeal, delete, retention, a bulk UPDATE — it equals the numbers recomputed from
the calls and findings; it buckets calls by local day in KEFUQA_TIMEZONE exactly as Python's zoneinfo does,
on both databases; it stays exact under real parallel requests (with merges running beside them); the
overview, trends and review badge read from it give the same figures as the raw queries."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import svc_samples as samples
from sqlalchemy import delete, func, select, text, update

from conftest import WS_TIMEOUT, World, join_all, make_settings, serve_app
from kefuqa.service import repository as repo
from kefuqa.service import rollup
from kefuqa.service.models import Conversation, Finding, StatsCalls, StatsRules, StatsZone, User, utcnow
from kefuqa.service.usecases import Ctx
from kefuqa.service.usecases.lifecycle import apply_retention
from kefuqa.service.workbench import Workbench

uvicorn = pytest.importorskip("uvicorn")


def _day(v: Any) -> date:
    return v if isinstance(v, date) else date.fromisoformat(str(v))


def rolled(db: Any) -> tuple[dict[tuple[Any, ...], tuple[int, int]], dict[tuple[Any, ...], tuple[int, int]]]:
    """The rollup summed per key (merged or not), zero sums left out."""
    s, r = StatsCalls, StatsRules
    calls = {(_day(d), t, bool(sc), g, bool(f), bool(i), int(b)): (int(n), int(m))
             for d, t, sc, g, f, i, b, n, m in db.execute(
                 select(s.day, s.team_id, s.scored, s.grade, s.fatal, s.insufficient, s.band, func.sum(s.calls),
                        func.sum(s.score_micro)).group_by(s.day, s.team_id, s.scored, s.grade, s.fatal,
                                                          s.insufficient, s.band))
             if int(n) or int(m)}
    rules = {(_day(d), t, rule): (int(n), int(o)) for d, t, rule, n, o in db.execute(
        select(r.day, r.team_id, r.rule, func.sum(r.findings), func.sum(r.open)).group_by(r.day, r.team_id, r.rule))
        if int(n) or int(o)}
    return calls, rules


def recomputed(db: Any) -> tuple[dict[tuple[Any, ...], tuple[int, int]], dict[tuple[Any, ...], tuple[int, int]]]:
    dialect = db.get_bind().dialect.name
    calls = {(_day(d), t, bool(sc), g, bool(f), bool(i), int(b)): (int(n), int(m))
             for d, t, sc, g, f, i, b, n, m in db.execute(text(rollup.raw_calls_sql(dialect)))}
    rules = {(_day(d), t, rule): (int(n), int(o)) for d, t, rule, _, n, o in db.execute(
        text(rollup.raw_rules_sql(dialect)))}
    return calls, rules


def assert_exact(wb: Workbench) -> None:
    """The rollup equals the raw recomputation, and its days are Python's local days of the calls."""
    tz = wb.settings.timezone
    with wb.sessions() as db:
        got, want = rolled(db), recomputed(db)
        assert got[0] == want[0]
        assert got[1] == want[1]
        per_day: Counter[date] = Counter()
        for (d, *_), (n, _) in got[0].items():
            per_day[d] += n
        py: Counter[date] = Counter(repo.local_day(at, tz) for at in db.scalars(select(Conversation.call_at)))
        assert +per_day == +py
        open_raw = db.scalar(select(func.count(Finding.id)).join(Conversation, (
            Conversation.id == Finding.conversation_id) & (Conversation.current_score_id == Finding.score_id)).where(
            Finding.kind == "finding", Finding.status == "open"))
        assert rollup.open_findings(db) == open_raw


def overview_figures(wb: Workbench, who: str = "admin") -> tuple[Any, ...]:
    """The overview's statistics and top rules as served from the rollup and as computed from the calls."""
    tz = wb.settings.timezone
    with wb.sessions() as db:
        user = db.scalar(select(User).where(User.username == who))
        every, teams = repo._summaries(db, user, tz, agent_id=None, team_id=None, days=30)
        raw_every, raw_teams = repo._Acc(), {}  # type: ignore[var-annotated]
        repo._raw_summaries(db, user, tz, raw_every, raw_teams, agent_id=None, team_id=None,
                            since=utcnow() - timedelta(days=30), until=None)
        top = repo.period_top_rules(db, user, tz, days=30, limit=50)
        raw_top = repo.top_rules(db, user, since=utcnow() - timedelta(days=30), limit=50)
    return (every.summary(), {t: a.summary() for t, a in teams.items()}, top), \
        (raw_every.summary(), {t: a.summary() for t, a in raw_teams.items()}, raw_top)


def test_rollup_follows_every_kind_of_write(world: World) -> None:
    wb = world.wb
    assert_exact(wb)
    # calls around local midnight (Asia/Shanghai), and a complaint
    for hour in (0, 23):
        call = samples.conversation(f"mid-{uuid.uuid4().hex[:8]}", "B1", 9, "refuse", hour=hour)
        assert world.post("qa", "/api/conversations", json=call).json()["stored"] == 1
    world.new_call("A2", "complaint")
    assert_exact(wb)
    # reviews: reject one finding, confirm another
    call = world.new_call("A1", "refuse")
    found = [f for f in world.findings("qa", call) if f.get("kind", "finding") == "finding"]
    assert len(found) >= 2
    r = world.post("qa", f"/api/findings/{found[0]['id']}/review", json={"verdict": "reject", "reason": "误判"})
    assert r.status_code == 200, r.text
    r = world.post("qa", f"/api/findings/{found[1]['id']}/review", json={"verdict": "confirm"})
    assert r.status_code == 200, r.text
    assert_exact(wb)
    # an appeal accepted: the finding is withdrawn
    call = world.new_call("A1", "fatal")
    f = world.findings("a1", call)[0]
    r = world.post("a1", f"/api/findings/{f['id']}/appeal", json={"reason": "我没有说这句话"})
    assert r.status_code == 201, r.text
    r = world.post("qa", f"/api/appeals/{r.json()['id']}/decision", json={"decision": "accept", "reason": "属实"})
    assert r.status_code == 200, r.text
    assert_exact(wb)
    # re-score (a new current score and findings), then delete a call
    r = world.post("qa", f"/api/calls/{call}/rescore")
    assert r.status_code == 200, r.text
    assert_exact(wb)
    gone = world.new_call("B1", "fatal")
    assert world.post("admin", f"/api/calls/{gone}/delete", json={"reason": "重复导入"}).status_code == 200
    assert_exact(wb)
    # a bulk UPDATE moving a call back in time, then retention deletes it
    old = world.new_call("A2", "refuse")
    with wb.sessions() as db, db.begin():
        db.execute(update(Conversation).where(Conversation.id == old).values(call_at=utcnow() - timedelta(days=400)))
    assert_exact(wb)
    with wb.sessions() as db:
        assert apply_retention(Ctx(wb, db), 365).calls == 1
    assert_exact(wb)
    # a plain DELETE of calls (the foreign keys take their scores and findings)
    plain = [world.new_call("A1", "fatal"), world.new_call("B1", "refuse")]
    with wb.sessions() as db, db.begin():
        db.execute(delete(Conversation).where(Conversation.id.in_(plain)))
    assert_exact(wb)
    # merged, the same numbers; and the overview from the rollup equals the overview from the calls
    assert rollup.compact(wb.engine) > 0
    with wb.sessions() as db:
        assert rollup.pending(db) == 0
    assert_exact(wb)
    served, raw = overview_figures(wb)
    assert served == raw
    served, raw = overview_figures(wb, "lead1")
    assert served == raw and served[0].calls > 0
    # the trends (weekly rates per rule and team) from the rollup equal those from the calls
    for who in ("admin", "lead2"):
        got, want = trend_figures(wb, who)
        assert got == want and sum(got[0]) > 0


def trend_figures(wb: Workbench, who: str) -> tuple[Any, Any]:
    from kefuqa.service.usecases import trends

    def figures() -> Any:
        with wb.sessions() as db:
            t = trends.trends(Ctx(wb, db, db.scalar(select(User).where(User.username == who))), 8, phrases=False)
            return t.calls, [(s.key, s.name, s.counts) for s in t.rules], [(s.key, s.counts, s.rates) for s in t.teams]

    got = figures()
    ready = rollup.ready
    try:
        rollup.ready = lambda db, tz: False  # type: ignore[assignment]
        want = figures()
    finally:
        rollup.ready = ready  # type: ignore[assignment]
    return got, want


def test_rebuild_gives_what_the_triggers_kept(world: World) -> None:
    with world.wb.sessions() as db:
        before = rolled(db)
    rollup.rebuild(world.wb.engine, world.wb.settings.timezone)
    with world.wb.sessions() as db:
        assert rolled(db) == before
        assert rollup.pending(db) == 0


def test_the_rebuild_command_fills_a_rollup_that_missed_writes(world: World) -> None:
    """Calls loaded with the triggers bypassed (here: the rollup emptied) are counted after `kefuqa stats
    rebuild`; `kefuqa stats compact` merges."""
    from typer.testing import CliRunner

    from kefuqa.service.cli import app

    with world.wb.sessions() as db, db.begin():
        db.execute(delete(StatsCalls))
        db.execute(delete(StatsRules))
    url = str(world.wb.settings.database_url)
    r = CliRunner().invoke(app, ["stats", "rebuild", "--database-url", url,
                                 "--data-dir", str(world.wb.settings.data_dir)])
    assert r.exit_code == 0, r.output
    assert "每日统计汇总已重建（时区 Asia/Shanghai）" in r.output
    assert_exact(world.wb)
    world.new_call("A1", "refuse")
    r = CliRunner().invoke(app, ["stats", "compact", "--database-url", url,
                                 "--data-dir", str(world.wb.settings.data_dir)])
    assert r.exit_code == 0 and "已合并" in r.output, r.output
    assert_exact(world.wb)


def test_setup_rebuilds_a_rollup_left_empty_beside_stored_calls(world: World) -> None:
    """Calls bulk-loaded with the triggers bypassed leave the rollup empty: the next setup builds it."""
    with world.wb.sessions() as db, db.begin():
        db.execute(delete(StatsCalls))
        db.execute(delete(StatsRules))
    assert rollup.ensure(world.wb.engine, world.wb.settings.timezone) is True
    assert_exact(world.wb)
    assert rollup.ensure(world.wb.engine, world.wb.settings.timezone) is False


def test_workers_starting_together_build_it_once_and_right(world: World) -> None:
    """After the migration every worker's setup finds the rollup unbuilt; four at once (threads with their own
    connections) all succeed and leave it exact."""
    wb = world.wb
    with wb.sessions() as db, db.begin():
        db.execute(delete(StatsZone))
        db.execute(delete(StatsCalls))
    built: list[bool] = []
    errors: list[str] = []
    barrier = threading.Barrier(4, timeout=WS_TIMEOUT)

    def start() -> None:
        barrier.wait()
        try:
            built.append(rollup.ensure(wb.engine, wb.settings.timezone))
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=start, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    join_all(threads, "a rollup build")
    assert errors == [] and True in built
    if world.backend == "postgresql":
        assert built.count(True) == 1
    assert_exact(wb)


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Kolkata"])
def test_days_in_the_configured_zone_the_same_on_both_databases(any_db: str, tmp_path: Path, zone: str) -> None:
    """Calls a minute either side of local midnight, and across New York's daylight-saving changes, land on
    the day zoneinfo gives; changing KEFUQA_TIMEZONE rebuilds the rollup for the new zone at setup."""
    wb = Workbench(make_settings(any_db, tmp_path, timezone=zone))
    wb.setup()
    instants = []
    for local in ("2026-03-07 23:59", "2026-03-08 00:01", "2026-03-08 01:59", "2026-03-08 03:01",
                  "2026-03-08 23:59", "2026-11-01 00:59", "2026-11-01 01:30", "2026-11-01 23:59",
                  "2026-11-02 00:00", "2025-12-31 23:59", "2026-01-01 00:00"):
        at = datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=__import__("zoneinfo").ZoneInfo(zone))
        instants.append(at.astimezone(timezone.utc))
    calls = []
    for i, at in enumerate(instants):
        c = samples.conversation(f"tz-{i}", "A1", 1, "refuse")
        c["started_at"] = at.isoformat()
        calls.append(c)
    _ingest(wb, calls)
    assert_exact(wb)
    with wb.sessions() as db:
        days = sorted(d for (d, *_), (n, _) in rolled(db)[0].items() for _ in range(n))
    assert days == sorted(repo.local_day(at, zone) for at in instants)
    wb.engine.dispose()
    # the same database under another zone: rebuilt at setup
    wb2 = Workbench(make_settings(any_db, tmp_path, timezone="Asia/Shanghai"))
    wb2.setup()
    with wb2.sessions() as db:
        assert rollup.stored_zone(db) == "Asia/Shanghai"
    assert_exact(wb2)
    wb2.engine.dispose()


def _ingest(wb: Workbench, calls: list[dict[str, Any]]) -> None:
    from fastapi.testclient import TestClient

    from conftest import ADMIN_PASSWORD
    from kefuqa.service.app import create_app

    with TestClient(create_app(wb.settings, wb)) as client:
        token = client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()["token"]
        r = client.post("/api/conversations", json=calls, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["stored"] == len(calls), r.text


# ---- concurrent writers ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[tuple[World, str]]:
    with serve_app(world.client.app) as base:
        yield world, base


def test_parallel_writers_and_merges_keep_it_exact(served: tuple[World, str]) -> None:
    """Eight clients at once, each ingesting calls of the same teams and days (the same rollup keys), reviewing
    their findings and deleting one call, while merges run beside them: every request succeeds (no deadlock,
    no lost update) and the rollup equals the recomputed numbers."""
    w, base = served
    errors: list[str] = []
    barrier = threading.Barrier(9, timeout=WS_TIMEOUT)

    def client(k: int) -> None:
        try:
            barrier.wait()
            with httpx.Client(base_url=base, timeout=120) as http:
                ids = []
                for j in range(4):
                    kind = ("refuse", "fatal", "complaint", "noclose")[(k + j) % 4]
                    call = samples.conversation(f"par-{k}-{j}-{uuid.uuid4().hex[:6]}", ("A1", "A2", "B1")[j % 3], 10,
                                                kind)
                    r = http.post("/api/conversations", json=call, headers=w.h("qa"))
                    if r.status_code != 200:
                        errors.append(r.text)
                        return
                    ids.append(r.json()["results"][0]["id"])
                for cid in ids[:2]:
                    fs = http.get(f"/api/calls/{cid}", headers=w.h("qa")).json()["findings"]
                    for f in fs[:2]:
                        verdict = {"verdict": "reject", "reason": "并发复核"} if f["id"] % 2 else {"verdict": "confirm"}
                        r = http.post(f"/api/findings/{f['id']}/review", json=verdict, headers=w.h("qa"))
                        if r.status_code not in (200, 409):
                            errors.append(r.text)
                r = http.post(f"/api/calls/{ids[3]}/rescore", headers=w.h("qa"))
                if r.status_code != 200:
                    errors.append(r.text)
                r = http.post(f"/api/calls/{ids[2]}/delete", json={"reason": "并发删除"}, headers=w.h("admin"))
                if r.status_code != 200:
                    errors.append(r.text)
        except Exception as exc:  # reported below with the others
            errors.append(repr(exc))

    def merger() -> None:
        barrier.wait()
        for _ in range(10):
            try:
                rollup.compact(w.wb.engine)
            except Exception as exc:  # SQLite: busy beside the writers is fine (merged later); nothing else is
                if "locked" not in str(exc):
                    errors.append(repr(exc))
            threading.Event().wait(0.05)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(8)] + \
        [threading.Thread(target=merger, daemon=True)]
    for t in threads:
        t.start()
    join_all(threads, "a client or the merger")
    assert errors == []
    assert_exact(w.wb)
    rollup.compact(w.wb.engine)
    assert_exact(w.wb)
