"""Trends and alerts: violations per 100 calls per rule and per team, week by week (local time), with the
change since the week before; a rule whose rate rises is flagged, and so is a customer phrase that became
frequent in complaint calls while it was rare the week before. The weekly summary for the QA meeting is
the same numbers as CSV and as a printable page.

Rates count the findings of each call's current score that no inspector or appeal voided; a week is Monday
00:00 to Monday 00:00 in the configured time zone.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal_column, select

from .. import cache, rollup
from .. import repository as repo
from ..models import Conversation, Finding, Team, utcnow
from .context import Ctx

STAFF = ("admin", "qa", "leader")
VOIDED = ("rejected", "overturned")
COMPLAINT_EVENT = "EVT001"
RISE_ABS = 1.0  # per 100 calls
RISE_REL = 1.5
RISE_MIN = 3
PHRASE_CALLS = 500  # complaint calls read per week for phrases
_CJK = re.compile(r"[\u4e00-\u9fff]+")


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _utc(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


@dataclass
class Series:
    key: str  # rule id or team id
    name: str
    counts: list[int]
    rates: list[float | None]  # per 100 calls, per week

    @property
    def change(self) -> float | None:
        if len(self.rates) < 2 or self.rates[-1] is None or self.rates[-2] is None:
            return None
        return round(self.rates[-1] - self.rates[-2], 2)

    @property
    def rising(self) -> bool:
        last, prev = (self.rates[-1], self.rates[-2]) if len(self.rates) >= 2 else (None, None)
        if last is None or prev is None or self.counts[-1] < RISE_MIN:
            return False
        return last - prev >= RISE_ABS and (prev == 0 or last / prev >= RISE_REL)


@dataclass
class Phrase:
    text: str
    calls: int  # complaint calls of this week whose customer said it
    share: float
    before: float  # share in the calls of the week before


@dataclass
class Trends:
    weeks: list[date]
    calls: list[int]
    rules: list[Series] = field(default_factory=list)
    teams: list[Series] = field(default_factory=list)
    phrases: list[Phrase] = field(default_factory=list)
    complaint_calls: tuple[int, int] = (0, 0)  # this week, the week before

    @property
    def rising(self) -> list[Series]:
        return [s for s in self.rules if s.rising]


def _raw_counts(ctx: Ctx, bounds: list[datetime], end: datetime, team_id: int | None, calls: list[int],
                team_calls: dict[int | None, list[int]], per_rule: dict[str, list[int]],
                per_team: dict[int | None, list[int]], names: dict[str, str]) -> None:
    """The weekly counts from the calls and findings themselves (before the rollup is built)."""
    user = ctx.acting()
    db = ctx.db
    weeks = len(bounds)
    bucket = _bucket(bounds)
    window = and_(Conversation.call_at >= bounds[0], Conversation.call_at < end)
    calls_stmt = repo.scope_calls(select(bucket.label("b"), Conversation.team_id, func.count(Conversation.id)), user) \
        .where(window)
    if team_id is not None:
        calls_stmt = calls_stmt.where(Conversation.team_id == team_id)
    for b, team, n in db.execute(calls_stmt.group_by(bucket, Conversation.team_id)):
        if b >= 0:
            calls[b] += int(n)
            team_calls.setdefault(team, [0] * weeks)[b] += int(n)
    f_stmt = repo.scope_calls(select(bucket.label("b"), Finding.rule, Conversation.team_id, func.count(Finding.id),
                                     func.max(Finding.name)).join(
        Conversation, and_(Conversation.id == Finding.conversation_id,
                           Conversation.current_score_id == Finding.score_id)), user).where(
        window, Finding.kind == "finding", Finding.status.not_in(VOIDED))
    if team_id is not None:
        f_stmt = f_stmt.where(Conversation.team_id == team_id)
    for b, rule, team, n, name in db.execute(f_stmt.group_by(bucket, Finding.rule, Conversation.team_id)):
        if b < 0:
            continue
        per_rule.setdefault(rule, [0] * weeks)[b] += int(n)
        per_team.setdefault(team, [0] * weeks)[b] += int(n)
        names[rule] = name or names.get(rule, "")


def _bucket(bounds: list[datetime]) -> Any:
    """The index of the week of `Conversation.call_at` (bounds ascending; before the first: no row)."""
    return case(*[(Conversation.call_at >= b, i) for i, b in reversed(list(enumerate(bounds)))], else_=-1)


def trends(ctx: Ctx, weeks: int = 8, *, team_id: int | None = None, until: date | None = None,
           phrases: bool = True) -> Trends:
    """`weeks` weeks ending with the week of `until` (default: this week), in the acting user's scope."""
    user = ctx.acting()
    ctx.require(STAFF, "坐席无权查看趋势")
    tz = ctx.settings.timezone
    weeks = max(2, min(52, weeks))
    last = week_start(until or repo.local_day(utcnow(), tz))
    starts = [last - timedelta(weeks=weeks - 1 - i) for i in range(weeks)]
    bounds = [_utc(d, tz) for d in starts]
    end = _utc(last + timedelta(weeks=1), tz)
    db = ctx.db
    calls = [0] * weeks
    team_calls: dict[int | None, list[int]] = {}
    per_rule: dict[str, list[int]] = {}
    per_team: dict[int | None, list[int]] = {}
    names: dict[str, str] = {}
    if user.role in ("admin", "qa", "leader") and rollup.ready(db, tz):
        # issue 13: the daily rollup (weeks are whole local days); a leader sees their team only
        scope = team_id
        if user.role == "leader":
            scope = user.team_id if user.team_id and team_id in (None, user.team_id) else -1
        rollup.tidy(db)
        last_day = last + timedelta(days=6)
        for r in rollup.call_rows(db, starts[0], last_day, scope, scored=None):
            b = (r.day - starts[0]).days // 7
            calls[b] += r.calls
            team_calls.setdefault(r.team_id, [0] * weeks)[b] += r.calls
        for b, team, rule, name, n in rollup.rule_weeks(db, starts, scope):
            per_rule.setdefault(rule, [0] * weeks)[b] += n
            per_team.setdefault(team, [0] * weeks)[b] += n
            names[rule] = max(name or "", names.get(rule, ""))
    else:
        _raw_counts(ctx, bounds, end, team_id, calls, team_calls, per_rule, per_team, names)

    def rates(counts: list[int], base: list[int]) -> list[float | None]:
        return [round(c * 100 / n, 2) if n else None for c, n in zip(counts, base, strict=True)]

    out = Trends(starts, calls)
    out.rules = sorted((Series(r, names.get(r, ""), c, rates(c, calls)) for r, c in per_rule.items()),
                       key=lambda s: (-(s.rates[-1] or 0), s.key))
    team_names = dict(db.execute(select(Team.id, Team.name)).all())
    out.teams = sorted((Series(str(t), team_names.get(t, "（无班组）") if t else "（无班组）", per_team.get(t, [0] * weeks),
                               rates(per_team.get(t, [0] * weeks), team_calls[t])) for t in team_calls),
                       key=lambda s: (-(s.rates[-1] or 0), s.name))
    if phrases:
        out.phrases, out.complaint_calls = new_phrases(ctx, bounds[-2], bounds[-1], end, team_id)
    return out


# ---- phrases -----------------------------------------------------------------------------------------------------


def ngrams(text: str, sizes: tuple[int, ...] = (2, 3, 4)) -> set[str]:
    """The character n-grams of the Chinese runs of `text`."""
    out: set[str] = set()
    for run in _CJK.findall(text):
        for n in sizes:
            out.update(run[i:i + n] for i in range(len(run) - n + 1))
    return out


def emerging(now: list[str], before: list[str], *, min_calls: int = 3, min_share: float = 0.1,
             max_before: float = 0.02, limit: int = 8) -> list[Phrase]:
    """Phrases (n-grams) said in at least `min_share` of this week's texts (one text per call) and in at most
    `max_before` of the week before; a phrase inside a longer one found as often is dropped. Pure."""
    if not now:
        return []
    df_now: Counter[str] = Counter(g for t in now for g in ngrams(t))
    df_before: Counter[str] = Counter(g for t in before for g in ngrams(t))
    need = max(min_calls, min_share * len(now))
    found = []
    for g, n in df_now.items():
        share_before = df_before.get(g, 0) / len(before) if before else 0.0
        if n >= need and share_before <= max_before:
            found.append(Phrase(g, n, n / len(now), share_before))
    found.sort(key=lambda p: (-p.calls, -len(p.text), p.text))
    kept: list[Phrase] = []
    for p in found[:200]:
        if any(p.text in k.text and k.calls >= 0.8 * p.calls for k in kept):
            continue
        kept = [k for k in kept if not (k.text in p.text and p.calls >= 0.8 * k.calls)]
        kept.append(p)
    return _merge(kept, now)[:limit]


def _merge(kept: list[Phrase], texts: list[str]) -> list[Phrase]:
    """Overlapping n-grams said in the same calls joined into the phrase they come from (充电桩一 + 桩一直充 →
    充电桩一直充)."""
    phrases = list(kept)
    merged = True
    while merged:
        merged = False
        for a in phrases:
            for b in phrases:
                if a is b:
                    continue
                k = next((k for k in range(min(len(a.text), len(b.text)) - 1, 0, -1)
                          if a.text.endswith(b.text[:k])), 0)
                if not k:
                    continue
                joined = a.text + b.text[k:]
                n = sum(1 for t in texts if joined in t)
                if n >= 0.8 * min(a.calls, b.calls):
                    phrases = [p for p in phrases if p is not a and p is not b]
                    phrases.append(Phrase(joined, n, n / len(texts), max(a.before, b.before)))
                    merged = True
                    break
            if merged:
                break
    phrases = [p for p in phrases if not any(p is not q and p.text in q.text and q.calls >= 0.8 * p.calls
                                             for q in phrases)]
    phrases.sort(key=lambda p: (-p.calls, -len(p.text), p.text))
    return phrases


def _customer_texts(ctx: Ctx, start: datetime, end: datetime, team_id: int | None) -> list[str]:
    user = ctx.acting()
    complaint = select(Finding.id).where(Finding.conversation_id == Conversation.id,
                                         Finding.score_id == Conversation.current_score_id,
                                         Finding.rule == COMPLAINT_EVENT).exists()
    pg = ctx.wb.dialect == "postgresql"
    # PostgreSQL joins the customer's utterances itself: a few hundred bytes a call instead of the whole
    # conversation decoded in Python (issue 13: the overview's alerts, cold, at a million calls)
    column = _PG_CUSTOMER_TEXT if pg else Conversation.data
    stmt = repo.scope_calls(select(column), user).where(
        Conversation.call_at >= start, Conversation.call_at < end, complaint)
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    out = []
    for (data,) in ctx.db.execute(stmt.order_by(Conversation.call_at.desc()).limit(PHRASE_CALLS)):
        if pg:
            out.append(data or "")
            continue
        out.append("\n".join(str(u.get("text") or "") for u in (data or {}).get("utterances") or []
                             if isinstance(u, dict) and u.get("role") == "customer"))
    return out


_PG_CUSTOMER_TEXT: Any = literal_column(
    "(SELECT coalesce(string_agg(coalesce(u.value->>'text', ''), E'\\n' ORDER BY u.ordinality), '') "
    "FROM jsonb_array_elements(CASE WHEN jsonb_typeof(conversations.data->'utterances') = 'array' "
    "THEN conversations.data->'utterances' ELSE '[]'::jsonb END) WITH ORDINALITY AS u "
    "WHERE jsonb_typeof(u.value) = 'object' AND u.value->>'role' = 'customer')")


def new_phrases(ctx: Ctx, prev: datetime, start: datetime, end: datetime,
                team_id: int | None = None) -> tuple[list[Phrase], tuple[int, int]]:
    now = _customer_texts(ctx, start, end, team_id)
    before = _customer_texts(ctx, prev, start, team_id)
    return emerging(now, before), (len(now), len(before))


# ---- weekly summary -----------------------------------------------------------------------------------------------


def weekly_csv(t: Trends) -> str:
    """The trends as CSV (UTF-8 with BOM for Excel): one row per week and rule or team."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv.writer(buf)
    w.writerow(["类别", "规则/班组", "名称", "周开始", "会话数", "违规次数", "每百通违规", "较上周变化", "上升预警"])
    for kind, series, base in (("规则", t.rules, t.calls), ("班组", t.teams, None)):
        for s in series:
            for i, d in enumerate(t.weeks):
                last = i == len(t.weeks) - 1
                w.writerow([kind, s.key if kind == "规则" else s.name, s.name if kind == "规则" else "", d.isoformat(),
                            (base or t.calls)[i] if kind == "规则" else "", s.counts[i],
                            "" if s.rates[i] is None else f"{s.rates[i]:.2f}",
                            "" if not last or s.change is None else f"{s.change:+.2f}",
                            "是" if last and s.rising else ""])
    for p in t.phrases:
        w.writerow(["投诉新词", p.text, "", t.weeks[-1].isoformat(), t.complaint_calls[0], p.calls,
                    f"{p.share * 100:.1f}%", f"上周 {p.before * 100:.1f}%", "是"])
    return buf.getvalue()


ALERTS_TTL = 600.0  # seconds the overview's alerts may be old
TRENDS_TTL = 600.0  # seconds the trends pages' figures may be old


def _scope(ctx: Ctx) -> tuple[Any, ...]:
    user = ctx.acting()
    ctx.require(STAFF, "坐席无权查看趋势")
    return ("all",) if user.role in ("admin", "qa") else (user.role, user.team_id, user.agent_id)


def cached(ctx: Ctx, weeks: int = 8, *, team_id: int | None = None, until: date | None = None) -> Trends:
    """`trends` as the pages and the API show it: computed at most once per `TRENDS_TTL` seconds per scope,
    span and team (about a second over eight weeks at a million calls); a call stored, reviewed or deleted
    through this process drops the cached figures at once."""
    scope = _scope(ctx)
    last = week_start(until or repo.local_day(utcnow(), ctx.settings.timezone))
    key = (scope, max(2, min(52, weeks)), team_id, last, ctx.settings.timezone)
    return cache.for_engine(ctx.wb.engine, "trends", TRENDS_TTL).get(
        key, lambda: trends(ctx, weeks, team_id=team_id, until=last))


def alerts(ctx: Ctx) -> dict[str, Any]:
    """For the overview: rules rising this week and new phrases in this week's complaint calls. Computed at
    most once per `ALERTS_TTL` seconds per scope and week (about half a second at a million calls); a review
    or deletion made through this process drops the cached value at once."""
    scope = _scope(ctx)
    week = week_start(repo.local_day(utcnow(), ctx.settings.timezone))

    def compute() -> dict[str, Any]:
        t = trends(ctx, 2)
        return {"rising": t.rising, "phrases": t.phrases}

    return cache.for_engine(ctx.wb.engine, "trend_alerts", ALERTS_TTL).get((scope, week), compute)
