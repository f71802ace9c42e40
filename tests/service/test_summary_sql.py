"""The overview's statistics are aggregated by the database (issue 13): one GROUP BY query per page instead of
reading the period's rows into Python. These tests compare `repository.summary` / `team_summaries` with the
Python computation they replaced, on a generated set of calls whose times cluster around local midnight in
Asia/Shanghai (16:00 UTC), on SQLite and PostgreSQL, for every role's scope; and the badge count's cache."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from conftest import World, make_settings
from kefuqa.service import repository as repo
from kefuqa.service.models import Agent, Conversation, Team, User, utcnow
from kefuqa.service.workbench import Workbench

TZ = "Asia/Shanghai"
GRADES = ["优秀", "良好", "合格", "不合格", None, ""]


@pytest.fixture(autouse=True)
def one_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """`repository` (since = utcnow() - days) and the reference below read one clock, stopped for the test: the
    generated calls sit on whole seconds around 16:00 UTC, so a run between 15:00 and 17:00 UTC would otherwise
    find a call that one side's `since` had passed and the other's, a few milliseconds apart, had not."""
    now = utcnow()
    monkeypatch.setattr(repo, "utcnow", lambda: now)


def reference_summary(db: Any, user: User, tz: str, *, agent_id: int | None = None, team_id: int | None = None,
                      days: int = repo.DEFAULT_DAYS) -> repo.Summary:
    """The Python computation `repository.summary` used before issue 13, verbatim but for the row limit."""
    since = repo.utcnow() - timedelta(days=days)
    stmt = repo.scope_calls(select(Conversation.call_at, Conversation.score, Conversation.grade,
                                   Conversation.fatal, Conversation.insufficient), user).where(
        Conversation.score.is_not(None), Conversation.call_at >= since)
    if agent_id is not None:
        stmt = stmt.where(Conversation.agent_id == agent_id)
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    every = db.execute(stmt).all()
    rows = [r[:4] for r in every if not r[4]]
    out = repo.Summary(calls=len(rows), insufficient=len(every) - len(rows))
    if not rows:
        return out
    scores = [float(r[1] or 0) for r in rows]
    out.average = round(sum(scores) / len(scores), 1)
    out.fatal = sum(1 for r in rows if r[3])
    out.grades = dict(Counter(r[2] or "" for r in rows).most_common())
    out.distribution = [(label, sum(1 for s in scores if lo <= s < hi)) for lo, hi, label in repo.BUCKETS]
    per_day: dict[date, list[float]] = defaultdict(list)
    for at, score, _, _ in rows:
        per_day[repo.local_day(at, tz)].append(float(score or 0))
    if len(per_day) > 45:
        weekly: dict[date, list[float]] = defaultdict(list)
        for d, vals in per_day.items():
            weekly[d - timedelta(days=d.weekday())].extend(vals)
        per_day = weekly
    out.trend = [(d, round(sum(v) / len(v), 1), len(v)) for d, v in sorted(per_day.items())]
    return out


def _generate(wb: Workbench, seed: int, n: int = 1500) -> tuple[list[int], list[int]]:
    """Teams, agents (one without a team) and n scored calls over the last 100 days, most within minutes of
    Shanghai midnight; scores are halves (exact in binary, so every order of addition gives the same sum)."""
    rnd = random.Random(seed)
    now = repo.utcnow()
    with wb.engine.begin() as conn:
        teams = [conn.execute(insert(Team).values(name=f"汇总组{seed}-{i}", created_at=now).returning(Team.id))
                 .scalar_one() for i in range(4)]
        agents = [conn.execute(insert(Agent).values(code=f"S{seed}-{i}", name=f"坐席{i}",
                                                    team_id=teams[i % 4] if i < 11 else None, created_at=now)
                               .returning(Agent.id)).scalar_one() for i in range(12)]
        rows = []
        for i in range(n):
            agent = rnd.randrange(len(agents))
            day = now.replace(hour=16, minute=0, second=0, microsecond=0) - timedelta(days=rnd.randrange(100))
            if rnd.random() < 0.7:  # around local midnight: 15:00–17:00 UTC, quarter-hour edges included
                at = day + timedelta(minutes=rnd.choice([-60, -15, -1, 0, 1, 14, 15, 59]), seconds=rnd.randrange(60))
            else:
                at = day + timedelta(seconds=rnd.randrange(86400))
            at = min(at, now - timedelta(seconds=1))
            score = None if rnd.random() < 0.05 else rnd.choice([0.0, 59.5, 60.0, 69.5, 70.0, 89.5, 90.0, 100.0,
                                                                  rnd.randrange(0, 201) / 2])
            rows.append(dict(call_id=f"sum-{seed}-{i}", agent_id=agents[agent],
                             team_id=None if agent >= 11 else teams[agent % 4], channel="phone", call_at=at,
                             utterance_count=1, has_audio=False, content_hash=f"h{i}",
                             data={"utterances": [{"role": "agent", "text": "您好"}]}, created_at=now, updated_at=now,
                             score=score, grade=rnd.choice(GRADES), fatal=rnd.random() < 0.1,
                             insufficient=rnd.random() < 0.08))
        conn.execute(insert(Conversation), rows)
    return teams, agents


def _same(a: repo.Summary, b: repo.Summary) -> None:
    assert (a.calls, a.average, a.fatal, a.insufficient) == (b.calls, b.average, b.fatal, b.insufficient)
    assert a.grades == b.grades and a.distribution == b.distribution
    assert a.trend == b.trend


def test_sql_aggregation_equals_python_for_every_scope(any_db: str, tmp_path: Path) -> None:
    wb = Workbench(make_settings(any_db, tmp_path, timezone=TZ))
    wb.setup()
    try:
        teams, agents = _generate(wb, seed=13)
        users = [User(role="admin"), User(role="qa"), User(role="leader", team_id=teams[1]),
                 User(role="leader", team_id=None), User(role="agent", agent_id=agents[5]),
                 User(role="agent", agent_id=agents[11])]
        with wb.sessions() as db:
            for days in (1, 7, 30, 90):  # 90 days: more than 45 days, so weekly points
                for user in users:
                    every, per_team = repo.team_summaries(db, user, TZ, days=days)
                    _same(every, reference_summary(db, user, TZ, days=days))
                    assert every.calls + every.insufficient == sum(s.calls + s.insufficient
                                                                   for s in per_team.values())
                    for team in [*teams, None]:
                        ref = reference_summary(db, user, TZ, team_id=team, days=days) if team else None
                        if ref is not None:
                            _same(repo.summary(db, user, TZ, team_id=team, days=days), ref)
                            _same(per_team.get(team) or repo.Summary(), ref)
                    _same(repo.summary(db, user, TZ, agent_id=agents[5], days=days),
                          reference_summary(db, user, TZ, agent_id=agents[5], days=days))
            s = repo.summary(db, users[0], TZ, days=90)
            assert len(s.trend) < 20 and s.calls > 1000  # weekly, and the set is really there
            d = repo.summary(db, users[0], TZ, days=7)
            assert 6 <= len(d.trend) <= 8 and sum(n for _, _, n in d.trend) == d.calls
    finally:
        wb.engine.dispose()


def test_day_boundary_in_shanghai(any_db: str, tmp_path: Path) -> None:
    """15:59 UTC is the old local day, 16:00 UTC the next one (UTC+8), on both databases."""
    wb = Workbench(make_settings(any_db, tmp_path, timezone=TZ))
    wb.setup()
    try:
        base = (utcnow() - timedelta(days=3)).replace(hour=16, minute=0, second=0, microsecond=0)
        now = utcnow()
        with wb.engine.begin() as conn:
            conn.execute(insert(Conversation), [
                dict(call_id=f"edge-{i}", channel="phone", call_at=base + off, utterance_count=1, has_audio=False,
                     content_hash="h", data={"utterances": []}, created_at=now, updated_at=now, score=score,
                     grade="合格", fatal=False, insufficient=False)
                for i, (off, score) in enumerate([(timedelta(seconds=-1), 60.0), (timedelta(minutes=-15), 70.0),
                                                  (timedelta(0), 80.0), (timedelta(minutes=14, seconds=59), 90.0)])])
        with wb.sessions() as db:
            s = repo.summary(db, User(role="admin"), TZ, days=30)
        before = (base - timedelta(seconds=1)).astimezone(timezone.utc) + timedelta(hours=8)
        assert s.trend == [(before.date(), 65.0, 2), (before.date() + timedelta(days=1), 85.0, 2)]
        assert isinstance(s.trend[0][0], date) and not isinstance(s.trend[0][0], datetime)
    finally:
        wb.engine.dispose()


@pytest.mark.parametrize("seed", [1, 2])
def test_sql_aggregation_other_zone(any_db: str, tmp_path: Path, seed: int) -> None:
    """A zone with a half-hour offset and daylight saving (Australia/Adelaide) gives the same days too."""
    tz = "Australia/Adelaide"
    wb = Workbench(make_settings(any_db, tmp_path, timezone=tz))
    wb.setup()
    try:
        _generate(wb, seed=seed, n=600)
        with wb.sessions() as db:
            for days in (30, 100):
                _same(repo.summary(db, User(role="admin"), tz, days=days),
                      reference_summary(db, User(role="admin"), tz, days=days))
    finally:
        wb.engine.dispose()


# ---- the review badge's count, cached for a few seconds ---------------------------------------------------------


def test_badge_count_is_cached_within_its_window_and_fresh_after(world: World) -> None:
    """The count of open findings is served from a cache for at most BADGE_TTL seconds: a change made outside
    this process shows once the window has passed; a review made through this process shows at once."""
    from kefuqa.service import cache
    from kefuqa.service.models import Finding

    wb = world.wb
    qa = User(role="qa")
    badge = cache.for_engine(wb.engine, "open_findings", repo.BADGE_TTL)
    clock = [1000.0]
    saved = badge.clock
    badge.clock = lambda: clock[0]
    try:
        badge.invalidate()
        with wb.sessions() as db:
            n0 = repo.counts(db, qa)["reviews"]
            assert n0 == repo.open_findings(db, fresh=True) and n0 > 2
            assert repo.counts(db, User(role="agent", agent_id=None))["reviews"] == 0  # not a reviewer's number
        # another process (a plain connection, no ORM session of this process) closes one finding
        with wb.engine.begin() as conn:
            fid = conn.execute(select(Finding.id).join(Conversation, Conversation.current_score_id == Finding.score_id)
                               .where(Finding.kind == "finding", Finding.status == "open")
                               .order_by(Finding.id).limit(1)).scalar_one()
            conn.execute(Finding.__table__.update().where(Finding.id == fid).values(status="confirmed"))
        clock[0] += repo.BADGE_TTL - 0.5
        with wb.sessions() as db:
            assert repo.counts(db, qa)["reviews"] == n0  # within the window: the cached value
            assert repo.open_findings(db, fresh=True) == n0 - 1
        clock[0] += 1.0
        with wb.sessions() as db:
            assert repo.counts(db, qa)["reviews"] == n0 - 1  # the window has passed: counted again
        # a review through this process drops the cached value when it commits
        call = world.new_call("A1", "fatal")
        open_ = [f for f in world.findings("qa", call) if f["kind"] == "finding" and f["status"] == "open"]
        with wb.sessions() as db:
            before = repo.counts(db, qa)["reviews"]
            assert before == repo.open_findings(db, fresh=True)
        r = world.post("qa", f"/api/findings/{open_[0]['id']}/review", json={"verdict": "confirm"})
        assert r.status_code == 200, r.text
        with wb.sessions() as db:
            assert repo.counts(db, qa)["reviews"] == before - 1 == repo.open_findings(db, fresh=True)
    finally:
        badge.clock = saved
        badge.invalidate()


def test_overview_alerts_cached_per_scope_and_dropped_by_a_review(world: World) -> None:
    from kefuqa.service import cache
    from kefuqa.service.usecases import Ctx, trends

    wb = world.wb
    alerts = cache.for_engine(wb.engine, "trend_alerts", trends.ALERTS_TTL)
    alerts.invalidate()
    calls = []
    real = trends.trends

    def counting(ctx: Any, weeks: int = 8, **kw: Any) -> Any:
        calls.append(weeks)
        return real(ctx, weeks, **kw)

    trends.trends = counting  # type: ignore[assignment]
    try:
        with wb.sessions() as db:
            admin = db.scalar(select(User).where(User.role == "admin"))
            qa = db.scalar(select(User).where(User.role == "qa"))
            leader = db.scalar(select(User).where(User.role == "leader"))
            a = trends.alerts(Ctx(wb, db, admin))
            assert trends.alerts(Ctx(wb, db, qa)) is a and len(calls) == 1  # admin and qa share one scope
            assert trends.alerts(Ctx(wb, db, leader)) is not a and len(calls) == 2  # a leader's is their team's
            fresh = real(Ctx(wb, db, admin), 2)
            assert [s.key for s in a["rising"]] == [s.key for s in fresh.rising]
            assert [p.text for p in a["phrases"]] == [p.text for p in fresh.phrases]
        call = world.new_call("A1", "fatal")
        f = next(f for f in world.findings("qa", call) if f["kind"] == "finding" and f["status"] == "open")
        assert world.post("qa", f"/api/findings/{f['id']}/review", json={"verdict": "confirm"}).status_code == 200
        with wb.sessions() as db:
            trends.alerts(Ctx(wb, db, db.scalar(select(User).where(User.role == "admin"))))
        assert len(calls) == 3  # the review dropped the cached alerts
    finally:
        trends.trends = real  # type: ignore[assignment]
        alerts.invalidate()


# ---- search: a frequent match walked newest first -----------------------------------------------------------------


def test_search_walk_gives_the_same_pages_as_the_exact_path(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """More matches than prefetched: PostgreSQL walks the newest calls in steps (here one or two calls a step, so
    every step boundary and call_at tie is crossed); every page, in every role's scope and with a filter, is the
    page the exact path gives, in the same order; the total is counted to the cap, or not at all (nothing
    narrows the search)."""
    from kefuqa.service.usecases import search

    def pages(who: str, **params: Any) -> list[tuple[list[str], int, bool]]:
        out = []
        for page in (1, 2, 3, 4):
            r = world.get(who, "/api/search", params={"q": "上不了网", "page": page, "page_size": 3, **params})
            assert r.status_code == 200, r.text
            body = r.json()
            out.append(([x["call_id"] for x in body["results"]], body["total"], body["more"]))
        return out

    cases = [("qa", {}), ("lead1", {}), ("a1", {}), ("qa", {"agent": "A1"}), ("qa", {"score_min": 50})]
    exact = {i: pages(who, **params) for i, (who, params) in enumerate(cases)}
    assert sum(len(ids) for ids, _, _ in exact[0]) >= 5  # several pages to walk
    monkeypatch.setattr(search, "PREFETCH", 2)
    monkeypatch.setattr(search, "COUNT_CAP", 2)
    monkeypatch.setattr(search, "WALK_CHUNK", 1)
    monkeypatch.setattr(search, "WALK_MAX", 2)
    for i, (who, params) in enumerate(cases):
        walked = pages(who, **params)
        assert [ids for ids, _, _ in walked] == [ids for ids, _, _ in exact[i]], (who, params)
        total = exact[i][0][1]
        assert all(t == min(total, 2) and more == (total > 2) for _, t, more in walked), (who, params, total)


def test_overview_stats_cached_within_window_and_dropped_by_an_upload(world: World) -> None:
    from kefuqa.service import cache

    wb = world.wb
    tz = wb.settings.timezone
    stats = cache.for_engine(wb.engine, "overview", repo.STATS_TTL)
    clock = [5000.0]
    saved = stats.clock
    stats.clock = lambda: clock[0]
    admin = User(role="admin")
    try:
        stats.invalidate()
        with wb.sessions() as db:
            s, teams, top = repo.overview_stats(db, admin, tz, 30)
            assert (s, teams) == (*repo.team_summaries(db, admin, tz, days=30),)
            assert top == repo.top_rules(db, admin, since=repo.utcnow() - timedelta(days=30), limit=8)
            assert repo.overview_stats(db, User(role="qa"), tz, 30)[0] is s  # admin and qa: one scope
        with wb.engine.begin() as conn:  # a change by another process: shown once the window has passed
            cid = conn.execute(select(Conversation.id).where(Conversation.score.is_not(None),
                                                             Conversation.insufficient.is_(False))
                               .order_by(Conversation.call_at.desc()).limit(1)).scalar_one()
            conn.execute(Conversation.__table__.update().where(Conversation.id == cid)
                         .values(insufficient=True))
        try:
            clock[0] += repo.STATS_TTL - 1
            with wb.sessions() as db:
                assert repo.overview_stats(db, admin, tz, 30)[0] is s
            clock[0] += 2
            with wb.sessions() as db:
                later = repo.overview_stats(db, admin, tz, 30)[0]
            assert later.insufficient == s.insufficient + 1 and later.calls == s.calls - 1
        finally:
            with wb.engine.begin() as conn:
                conn.execute(Conversation.__table__.update().where(Conversation.id == cid)
                             .values(insufficient=False))
        stats.invalidate()
        with wb.sessions() as db:
            before = repo.overview_stats(db, admin, tz, 30)[0]
        world.new_call("A1", "good", day=1)  # an upload through this process: shown at once
        with wb.sessions() as db:
            after = repo.overview_stats(db, admin, tz, 30)[0]
            assert after.calls + after.insufficient == before.calls + before.insufficient + 1
            assert after.calls + after.insufficient == sum(
                x.calls + x.insufficient for x in repo.team_summaries(db, admin, tz, days=30)[1].values())
    finally:
        stats.clock = saved
        stats.invalidate()


def test_trends_pages_cached_per_scope_and_equal_to_fresh(world: World) -> None:
    from kefuqa.service import cache
    from kefuqa.service.usecases import Ctx, trends

    wb = world.wb
    store = cache.for_engine(wb.engine, "trends", trends.TRENDS_TTL)
    store.invalidate()
    try:
        with wb.sessions() as db:
            qa = db.scalar(select(User).where(User.role == "qa"))
            lead = db.scalar(select(User).where(User.username == "lead1"))
            t = trends.cached(Ctx(wb, db, qa), 8)
            fresh = trends.trends(Ctx(wb, db, qa), 8)
            assert (t.weeks, t.calls, [(s.key, s.counts) for s in t.rules]) == \
                (fresh.weeks, fresh.calls, [(s.key, s.counts) for s in fresh.rules])
            assert trends.cached(Ctx(wb, db, qa), 8) is t
            mine = trends.cached(Ctx(wb, db, lead), 8, team_id=lead.team_id)
            assert mine is not t and sum(mine.calls) <= sum(t.calls)
        # the page and the API agree with the use case; an agent is still refused (checked before the cache)
        assert world.get("qa", "/api/trends").json()["calls"] == t.calls
        assert world.get("a1", "/api/trends").status_code == 403
        call = world.new_call("A1", "fatal", day=20)
        with wb.sessions() as db:
            again = trends.cached(Ctx(wb, db, db.scalar(select(User).where(User.role == "qa"))), 8)
        assert again is not t and sum(again.calls) == sum(t.calls) + 1, call
    finally:
        store.invalidate()
