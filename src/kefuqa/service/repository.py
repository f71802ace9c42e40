"""Queries, every one scoped by the user's role, and the audit log (the actions that change things are
the use cases in `service.usecases`).

- admin, qa: every call;
- leader: the calls of their team (the team the agent was in when the call was stored);
- agent: their own calls only.

Anything out of scope is reported as missing (`NotFound`), so guessed ids tell nothing. All SQL is built
with SQLAlchemy expressions (bound parameters); no string is ever spliced into SQL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Numeric, Select, String, and_, case, cast, false, func, select
from sqlalchemy.orm import Session as DBSession

from . import cache, rollup
from .errors import Forbidden, NotFound
from .models import (
    Agent,
    Appeal,
    AuditEntry,
    Conversation,
    Finding,
    RulebookVersion,
    Score,
    Team,
    User,
    utcnow,
)
from .scores import human_row

if TYPE_CHECKING:
    from typing_extensions import Unpack

REVIEWERS = ("admin", "qa")
PAGE_MAX = 200


S = TypeVar("S", bound="Select[Unpack[tuple[Any, ...]]]")


def scope_calls(stmt: S, user: User) -> S:
    if user.role in ("admin", "qa"):
        return stmt
    if user.role == "leader":
        return stmt.where(Conversation.team_id == user.team_id) if user.team_id else stmt.where(false())
    if user.role == "agent":
        return stmt.where(Conversation.agent_id == user.agent_id) if user.agent_id else stmt.where(false())
    return stmt.where(false())


def can_review(user: User) -> bool:
    return user.role in REVIEWERS


def audit(db: DBSession, user: User | None, action: str, object_type: str | None = None,
          object_id: object = None, ip: str | None = None, **detail: Any) -> None:
    db.add(AuditEntry(user_id=user.id if user else None, username=user.username if user else None, action=action,
                      object_type=object_type, object_id=None if object_id is None else str(object_id),
                      detail=detail, ip=ip, at=utcnow()))


# ---- call list -------------------------------------------------------------------------------------------


@dataclass
class CallFilter:
    agent: str | None = None  # agent code
    team: int | None = None
    date_from: date | None = None
    date_to: date | None = None
    score_min: float | None = None
    score_max: float | None = None
    rule: str | None = None  # rule id or prefix (LNG, LNG001)
    grade: str | None = None
    channel: str | None = None
    q: str | None = None  # call id contains
    fatal: bool | None = None
    review: str | None = None  # open: has unreviewed findings | done: all reviewed
    sort: str = "-call_at"
    page: int = 1
    page_size: int = 50

    def params(self) -> dict[str, str]:
        out = {}
        for k, v in self.__dict__.items():
            if v is None or v == "" or (k == "sort" and v == "-call_at") or (k == "page" and v == 1) or \
                    (k == "page_size" and v == 50):
                continue
            out[k] = "1" if v is True else "0" if v is False else str(v)
        return out


SORTS = {
    "call_at": Conversation.call_at, "score": Conversation.score, "call_id": Conversation.call_id,
    "duration": Conversation.duration,
}


def _bounds(day: date, tz: str) -> datetime:
    return datetime.combine(day, time.min, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)


def _rule_match(column: Any, rule: str) -> Any:
    """A rule id (LNG001) or a prefix of ids (LNG). The prefix is a range, so the (rule, status) index
    serves it whatever the database's collation."""
    rule = rule.strip().upper()
    if rule[-1:].isdigit() or not rule.isalnum() or not rule.isascii():
        return column == rule
    return and_(column >= rule, column < rule[:-1] + chr(ord(rule[-1]) + 1))


def filtered_calls(user: User, f: CallFilter, tz: str) -> Select[Any]:
    stmt = scope_calls(select(Conversation), user)
    if f.agent:
        stmt = stmt.join(Agent, Agent.id == Conversation.agent_id).where(Agent.code == f.agent)
    if f.team:
        stmt = stmt.where(Conversation.team_id == f.team)
    if f.date_from:
        stmt = stmt.where(Conversation.call_at >= _bounds(f.date_from, tz))
    if f.date_to:
        stmt = stmt.where(Conversation.call_at < _bounds(f.date_to + timedelta(days=1), tz))
    if f.score_min is not None:
        stmt = stmt.where(Conversation.score >= f.score_min)
    if f.score_max is not None:
        stmt = stmt.where(Conversation.score <= f.score_max)
    if f.grade:
        stmt = stmt.where(Conversation.grade == f.grade)
    if f.channel:
        stmt = stmt.where(Conversation.channel == f.channel)
    if f.fatal is not None:
        stmt = stmt.where(Conversation.fatal == f.fatal)
    if f.q:
        stmt = stmt.where(Conversation.call_id.contains(f.q.strip(), autoescape=True))
    if f.rule:
        stmt = stmt.where(select(Finding.id).where(
            Finding.score_id == Conversation.current_score_id, _rule_match(Finding.rule, f.rule),
            Finding.status.not_in(("rejected", "overturned"))).exists())
    if f.review == "open":
        stmt = stmt.where(select(Finding.id).where(
            Finding.score_id == Conversation.current_score_id, Finding.kind == "finding",
            Finding.status == "open").exists())
    elif f.review == "done":
        stmt = stmt.where(~select(Finding.id).where(
            Finding.score_id == Conversation.current_score_id, Finding.kind == "finding",
            Finding.status == "open").exists())
    return stmt


def list_calls(db: DBSession, user: User, f: CallFilter, tz: str) -> tuple[list[Conversation], int]:
    stmt = filtered_calls(user, f, tz)
    total = db.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
    key = f.sort.lstrip("-")
    col = SORTS.get(key, Conversation.call_at)
    order = col.desc() if f.sort.startswith("-") else col.asc()
    size = max(1, min(PAGE_MAX, f.page_size))
    page = max(1, f.page)
    rows = list(db.scalars(stmt.order_by(order, Conversation.id.desc()).offset((page - 1) * size).limit(size)))
    return rows, total


def iter_calls(db: DBSession, user: User, f: CallFilter, tz: str, limit: int = 100_000) -> list[Conversation]:
    stmt = filtered_calls(user, f, tz).order_by(Conversation.call_at.desc(), Conversation.id.desc()).limit(limit)
    return list(db.scalars(stmt))


def finding_counts(db: DBSession, calls: list[Conversation]) -> dict[int, dict[str, int]]:
    """Per call: findings (not voided) and of those still open for review."""
    ids = [c.current_score_id for c in calls if c.current_score_id]
    if not ids:
        return {}
    rows = db.execute(select(
        Finding.conversation_id,
        func.sum(case((Finding.status.not_in(("rejected", "overturned")), 1), else_=0)),
        func.sum(case((Finding.status == "open", 1), else_=0)),
    ).where(Finding.score_id.in_(ids), Finding.kind == "finding").group_by(Finding.conversation_id)).all()
    return {cid: {"findings": int(n or 0), "open": int(o or 0)} for cid, n, o in rows}


# ---- one call --------------------------------------------------------------------------------------------


def get_call(db: DBSession, user: User, call_id: int) -> Conversation:
    conv = db.scalar(scope_calls(select(Conversation).where(Conversation.id == call_id), user))
    if conv is None:
        raise NotFound("会话不存在或无权查看")
    return conv


def get_call_by_ref(db: DBSession, user: User, ref: str) -> Conversation:
    """By numeric id or by the call's own id."""
    if ref.isdigit():
        try:
            return get_call(db, user, int(ref))
        except NotFound:
            pass
    conv = db.scalar(scope_calls(select(Conversation).where(Conversation.call_id == ref), user))
    if conv is None:
        raise NotFound("会话不存在或无权查看")
    return conv


def current_score(db: DBSession, conv: Conversation) -> Score | None:
    return db.get(Score, conv.current_score_id) if conv.current_score_id else None


def score_history(db: DBSession, conv: Conversation) -> list[Score]:
    return list(db.scalars(select(Score).where(Score.conversation_id == conv.id).order_by(Score.id.desc())))


def call_findings(db: DBSession, score_id: int) -> list[Finding]:
    return list(db.scalars(select(Finding).where(Finding.score_id == score_id)
                           .order_by(Finding.kind.desc(), Finding.position)))


def appeals_for(db: DBSession, finding_ids: list[int]) -> dict[int, Appeal]:
    if not finding_ids:
        return {}
    return {a.finding_id: a for a in db.scalars(select(Appeal).where(Appeal.finding_id.in_(finding_ids)))}


def user_names(db: DBSession, ids: set[int | None]) -> dict[int, str]:
    ids = {i for i in ids if i}
    if not ids:
        return {}
    return {u.id: u.label for u in db.scalars(select(User).where(User.id.in_(ids)))}


def get_finding(db: DBSession, user: User, finding_id: int) -> tuple[Finding, Conversation]:
    """A finding and its call, if the call is in the user's scope."""
    row = db.execute(scope_calls(select(Finding, Conversation).join(
        Conversation, Conversation.id == Finding.conversation_id).where(Finding.id == finding_id), user)).first()
    if row is None:
        raise NotFound("扣分项不存在或无权查看")
    finding, conv = row
    return finding, conv


# ---- appeals -------------------------------------------------------------------------------------------


def scope_appeals(stmt: S, user: User) -> S:
    return scope_calls(stmt.join(Conversation, Conversation.id == Appeal.conversation_id), user)


def get_appeal(db: DBSession, user: User, appeal_id: int) -> Appeal:
    appeal = db.scalar(scope_appeals(select(Appeal).where(Appeal.id == appeal_id), user))
    if appeal is None:
        raise NotFound("申诉不存在或无权查看")
    return appeal


def list_appeals(db: DBSession, user: User, status: str | None = None, limit: int = 200) -> list[Appeal]:
    stmt = scope_appeals(select(Appeal), user)
    if status:
        stmt = stmt.where(Appeal.status == status)
    order = case((Appeal.status == "pending", 0), else_=1)
    return list(db.scalars(stmt.order_by(order, Appeal.created_at.desc()).limit(limit)))


def review_queue(db: DBSession, user: User, rule: str | None = None, team: int | None = None,
                 limit: int = 100) -> tuple[list[tuple[Finding, Conversation]], int]:
    """Findings of current scores no inspector has looked at: fatal and major first, then the newest calls."""
    if not can_review(user):
        raise Forbidden("只有质检员和管理员可以复核")
    stmt = select(Finding, Conversation).join(Conversation, and_(
        Conversation.id == Finding.conversation_id, Conversation.current_score_id == Finding.score_id)).where(
        Finding.kind == "finding", Finding.status == "open")
    if rule:
        stmt = stmt.where(_rule_match(Finding.rule, rule))
    if team:
        stmt = stmt.where(Conversation.team_id == team)
    stmt = scope_calls(stmt, user)
    total = db.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    sev = case((Finding.severity == "fatal", 0), (Finding.severity == "critical", 0), (Finding.severity == "major", 1),
               else_=2)
    rows = db.execute(stmt.order_by(sev, Conversation.call_at.desc(), Finding.id).limit(limit)).all()
    return [(f, c) for f, c in rows], total


# ---- statistics ------------------------------------------------------------------------------------------------


def _current_findings(user: User) -> Select[str, str | None, int]:
    return scope_calls(select(Finding.rule, func.max(Finding.name), func.count(Finding.id)).join(
        Conversation, and_(Conversation.id == Finding.conversation_id,
                           Conversation.current_score_id == Finding.score_id)).where(
        Finding.kind == "finding", Finding.status.not_in(("rejected", "overturned"))), user)


def top_rules(db: DBSession, user: User, *, agent_id: int | None = None, team_id: int | None = None,
              since: datetime | None = None, limit: int = 10) -> list[dict[str, Any]]:
    stmt = _current_findings(user)
    if agent_id is not None:
        stmt = stmt.where(Conversation.agent_id == agent_id)
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    if since is not None:
        stmt = stmt.where(Conversation.call_at >= since)
    rows = db.execute(stmt.group_by(Finding.rule).order_by(func.count(Finding.id).desc(), Finding.rule)
                      .limit(limit)).all()
    return [{"rule": r, "name": n, "count": int(c)} for r, n, c in rows]


def period_top_rules(db: DBSession, user: User, tz: str, *, days: int, team_id: int | None = None,
                     limit: int = 10) -> list[dict[str, Any]]:
    """`top_rules` over the last `days` days: the whole local days after the first from the daily rollup
    (issue 13), the part of the first day inside the period from the findings."""
    since = utcnow() - timedelta(days=days)
    if user.role not in ("admin", "qa", "leader") or not rollup.ready(db, tz):
        return top_rules(db, user, team_id=team_id, since=since, limit=limit)
    if user.role == "leader":
        if not user.team_id or (team_id is not None and team_id != user.team_id):
            return []
        team_id = user.team_id
    first = local_day(since, tz) + timedelta(days=1)
    rollup.tidy(db)
    counts: Counter[str] = Counter()
    names: dict[str, str | None] = {}
    for r in rollup.top_rules(db, first, date.max, team_id, limit=1000):
        counts[r["rule"]] += r["count"]
        names[r["rule"]] = r["name"]
    stmt = _current_findings(user).where(Conversation.call_at >= since, Conversation.call_at < _bounds(first, tz))
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    for rule, name, n in db.execute(stmt.group_by(Finding.rule)).all():
        counts[rule] += int(n)
        names[rule] = max((x for x in (names.get(rule), name) if x), default=None)
    ranked = sorted(((r, n) for r, n in counts.items() if n > 0), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"rule": r, "name": names.get(r), "count": n} for r, n in ranked]


def practice(db: DBSession, user: User, agent_id: int, rules: list[str]) -> dict[str, list[dict[str, Any]]]:
    """For each rule: the prescribed sentences (suggestions) the agent's findings carried, most frequent first,
    with an example of what was said."""
    if not rules:
        return {}
    stmt = scope_calls(select(Finding.rule, Finding.suggestion, func.count(Finding.id), func.max(Finding.evidence))
                       .join(Conversation, and_(Conversation.id == Finding.conversation_id,
                                                Conversation.current_score_id == Finding.score_id))
                       .where(Conversation.agent_id == agent_id, Finding.rule.in_(rules), Finding.kind == "finding",
                              Finding.status.not_in(("rejected", "overturned"))), user)
    rows = db.execute(stmt.group_by(Finding.rule, Finding.suggestion)).all()
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rule, suggestion, count, evidence in sorted(rows, key=lambda r: -r[2]):
        out[rule].append({"suggestion": suggestion, "count": int(count), "evidence": evidence})
    return dict(out)


def local_day(dt: datetime, tz: str) -> date:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(ZoneInfo(tz)).date()


@dataclass
class Summary:
    calls: int = 0
    average: float | None = None
    fatal: int = 0
    grades: dict[str, int] = field(default_factory=dict)
    trend: list[tuple[date, float, int]] = field(default_factory=list)  # (day or week start, avg, calls)
    distribution: list[tuple[str, int]] = field(default_factory=list)
    insufficient: int = 0  # calls 「未充分质检」 in the period, left out of the figures above


# The period statistics cover unless a page or request names another: the same for every page and the API,
# so two views never disagree about one agent by default (issue 9).
DEFAULT_DAYS = 30

BUCKETS = [(0, 60, "<60"), (60, 70, "60–69"), (70, 80, "70–79"), (80, 90, "80–89"), (90, 101, "90–100")]


def _day_key(dialect: str, tz: str) -> Any:
    """The SQL expression that groups `Conversation.call_at` by local day. PostgreSQL converts with its own
    time-zone database; SQLite has none, so it groups by the quarter-hour in UTC (every zone's offset and every
    daylight-saving change falls on a quarter-hour), which Python turns into the local day."""
    if dialect == "postgresql":
        return func.date(func.timezone(tz, Conversation.call_at))
    at = Conversation.call_at
    return func.substr(at, 1, 14, type_=String) + cast(cast(func.substr(at, 15, 2), Integer).op("/")(15), String)


def _local_day_of(key: Any, dialect: str, tz: str) -> date:
    if dialect == "postgresql":
        return key if isinstance(key, date) else date.fromisoformat(str(key))
    text = str(key)  # "YYYY-MM-DD HH:" and the quarter (0-3)
    at = datetime.strptime(text[:13], "%Y-%m-%d %H").replace(tzinfo=timezone.utc) + \
        timedelta(minutes=15 * int(text[14:] or 0))
    return local_day(at, tz)


def _bucket_of_score() -> Any:
    s = Conversation.score
    return case(*[(and_(s >= lo, s < hi), i) for i, (lo, hi, _) in enumerate(BUCKETS)], else_=-1)


@dataclass
class _Acc:
    """Running totals of one scope; sums are kept exact (Decimal) so the order of addition never matters."""
    calls: int = 0
    total: Decimal = Decimal(0)
    fatal: int = 0
    insufficient: int = 0
    grades: Counter[str] = field(default_factory=Counter)
    buckets: Counter[int] = field(default_factory=Counter)
    days: dict[date, list[Any]] = field(default_factory=dict)  # day: [calls, exact sum]

    def add(self, day: date, grade: str | None, fatal: bool | None, insufficient: bool | None, bucket: int,
            n: int, total: Decimal) -> None:
        if insufficient:
            self.insufficient += n
            return
        self.calls += n
        self.total += total
        self.fatal += n if fatal else 0
        self.grades[grade or ""] += n
        self.buckets[bucket] += n
        d = self.days.setdefault(day, [0, Decimal(0)])
        d[0] += n
        d[1] += total

    def summary(self) -> Summary:
        out = Summary(calls=self.calls, insufficient=self.insufficient)
        if not self.calls:
            return out
        out.average = round(float(self.total / self.calls), 1)
        out.fatal = self.fatal
        out.grades = dict(sorted(self.grades.items(), key=lambda kv: (-kv[1], kv[0])))
        out.distribution = [(label, self.buckets.get(i, 0)) for i, (_, _, label) in enumerate(BUCKETS)]
        per: dict[date, list[Any]] = self.days
        if len(per) > 45:  # weekly points read better over a long span
            weekly: dict[date, list[Any]] = {}
            for d, (n, t) in per.items():
                w = weekly.setdefault(d - timedelta(days=d.weekday()), [0, Decimal(0)])
                w[0] += n
                w[1] += t
            per = weekly
        out.trend = [(d, round(float(t / n), 1), n) for d, (n, t) in sorted(per.items())]
        return out


def _summaries(db: DBSession, user: User, tz: str, *, agent_id: int | None, team_id: int | None,
               days: int) -> tuple[_Acc, dict[int | None, _Acc]]:
    """The scope's and each team's running totals over the last `days` days. Without an agent: the whole local
    days after the period's first one from the daily rollup (issue 13, `service.rollup`), the part of that
    first day inside the period from the calls; with an agent (or before the rollup is built): all from the
    calls."""
    since = utcnow() - timedelta(days=days)
    every = _Acc()
    teams: dict[int | None, _Acc] = {}
    until: datetime | None = None
    if agent_id is None and user.role in ("admin", "qa", "leader") and rollup.ready(db, tz):
        rollup.tidy(db)
        first = local_day(since, tz) + timedelta(days=1)
        until = _bounds(first, tz)
        scope = team_id
        if user.role == "leader":
            if not user.team_id or (team_id is not None and team_id != user.team_id):
                return every, teams
            scope = user.team_id
        for r in rollup.call_rows(db, first, date.max, scope):
            exact = Decimal(r.score_micro) / 1_000_000
            for acc in (every, teams.setdefault(r.team_id, _Acc())):
                acc.add(r.day, r.grade, r.fatal, r.insufficient, r.band, r.calls, exact)
    _raw_summaries(db, user, tz, every, teams, agent_id=agent_id, team_id=team_id, since=since, until=until)
    return every, teams


def _raw_summaries(db: DBSession, user: User, tz: str, every: _Acc, teams: dict[int | None, _Acc], *,
                   agent_id: int | None, team_id: int | None, since: datetime, until: datetime | None) -> None:
    """One GROUP BY (team, local day, grade, fatal, 未充分质检, score band) query over the calls from `since`
    (to `until`); the scope's and each team's figures are sums of its rows. Served by
    ix_conversations_call_at_stats on PostgreSQL."""
    dialect = db.get_bind().dialect.name
    day = _day_key(dialect, tz).label("day")
    band = _bucket_of_score().label("band")
    # an exact sum: PostgreSQL's numeric; SQLite's sum of reals is compensated
    total = func.sum(cast(Conversation.score, Numeric) if dialect == "postgresql" else Conversation.score)
    stmt = scope_calls(select(Conversation.team_id, day, Conversation.grade, Conversation.fatal,
                              Conversation.insufficient, band, func.count(), total), user).where(
        Conversation.score.is_not(None), Conversation.call_at >= since)
    if until is not None:
        stmt = stmt.where(Conversation.call_at < until)
    if agent_id is not None:
        stmt = stmt.where(Conversation.agent_id == agent_id)
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    stmt = stmt.group_by(Conversation.team_id, day, Conversation.grade, Conversation.fatal,
                         Conversation.insufficient, band)
    local: dict[Any, date] = {}
    for team, key, grade, fatal, insufficient, bucket, n, sum_ in db.execute(stmt):
        d = local.get(key)
        if d is None:
            d = local[key] = _local_day_of(key, dialect, tz)
        exact = sum_ if isinstance(sum_, Decimal) else Decimal(repr(float(sum_ or 0)))
        for acc in (every, teams.setdefault(team, _Acc())):
            acc.add(d, grade, fatal, insufficient, int(bucket), int(n), exact)


def summary(db: DBSession, user: User, tz: str, *, agent_id: int | None = None, team_id: int | None = None,
            days: int = DEFAULT_DAYS) -> Summary:
    """Calls, average, grades, score distribution and the daily (or weekly) trend of a scope, aggregated by
    the database (one GROUP BY query)."""
    return _summaries(db, user, tz, agent_id=agent_id, team_id=team_id, days=days)[0].summary()


def team_summaries(db: DBSession, user: User, tz: str, *,
                   days: int = DEFAULT_DAYS) -> tuple[Summary, dict[int | None, Summary]]:
    """The scope's summary and each team's (by the team the call was stored with; None: no team), from the
    same single query; a team without calls in the period has no entry."""
    every, teams = _summaries(db, user, tz, agent_id=None, team_id=None, days=days)
    return every.summary(), {t: acc.summary() for t, acc in teams.items()}


STATS_TTL = 30.0  # seconds the overview's statistics may be old (issue 13)


def overview_stats(db: DBSession, user: User, tz: str, days: int = DEFAULT_DAYS,
                   ) -> tuple[Summary, dict[int | None, Summary], list[dict[str, Any]]]:
    """The overview's figures: the scope's summary, each team's, and the most violated rules of the period.
    At a million calls they take about a second to compute, so they are computed at most once per `STATS_TTL`
    seconds per scope and period in a process (and again at once after this process stores, reviews or
    deletes something)."""
    def compute() -> tuple[Summary, dict[int | None, Summary], list[dict[str, Any]]]:
        every, teams = team_summaries(db, user, tz, days=days)
        return every, teams, period_top_rules(db, user, tz, days=days, limit=8)

    scope = ("all",) if user.role in REVIEWERS else (user.role, user.team_id, user.agent_id)
    bind = db.get_bind()
    return cache.for_engine(getattr(bind, "engine", bind), "overview", STATS_TTL).get((scope, tz, days), compute)


def agent_ranking(db: DBSession, user: User, team_id: int | None = None,
                  days: int = DEFAULT_DAYS) -> list[dict[str, Any]]:
    since = utcnow() - timedelta(days=days)
    stmt = scope_calls(select(Agent.id, Agent.code, Agent.name, func.count(Conversation.id),
                              func.avg(Conversation.score),
                              func.sum(case((Conversation.fatal.is_(True), 1), else_=0)))
                       .join(Agent, Agent.id == Conversation.agent_id), user).where(
        Conversation.score.is_not(None), Conversation.call_at >= since, Conversation.insufficient.is_(False))
    if team_id is not None:
        stmt = stmt.where(Conversation.team_id == team_id)
    rows = db.execute(stmt.group_by(Agent.id, Agent.code, Agent.name)).all()
    ranked = [{"id": i, "code": c, "name": n, "calls": int(k), "average": round(float(a or 0), 1),
               "fatal": int(f or 0)} for i, c, n, k, a, f in rows]
    ranked.sort(key=lambda r: (-r["average"], -r["calls"], r["code"]))
    return ranked


def rule_quality(db: DBSession, user: User) -> list[dict[str, Any]]:
    """Per rule, over the current scores: findings, and how inspectors and appeals judged them."""
    if user.role != "admin":
        raise Forbidden("只有管理员可以查看规则准确率")
    stmt = select(
        Finding.rule, func.max(Finding.name), func.count(Finding.id),
        func.sum(case((Finding.status == "confirmed", 1), else_=0)),
        func.sum(case((Finding.status == "rejected", 1), else_=0)),
        func.sum(case((Finding.status == "overturned", 1), else_=0)),
    ).join(Conversation, and_(Conversation.id == Finding.conversation_id,
                              Conversation.current_score_id == Finding.score_id)).where(
        Finding.kind == "finding", ~human_row()).group_by(Finding.rule)  # the machine's findings only
    out = []
    for rule, name, total, confirmed, rejected, overturned in db.execute(stmt).all():
        confirmed, rejected, overturned = int(confirmed or 0), int(rejected or 0), int(overturned or 0)
        judged = confirmed + rejected + overturned
        out.append({"rule": rule, "name": name, "findings": int(total), "reviewed": judged, "confirmed": confirmed,
                    "rejected": rejected, "overturned": overturned,
                    "precision": round(confirmed / judged, 3) if judged else None})
    out.sort(key=lambda r: (r["precision"] if r["precision"] is not None else 2, -r["findings"], r["rule"]))
    return out


def counts(db: DBSession, user: User) -> dict[str, int]:
    """Numbers for the navigation badges."""
    out = {"appeals": 0, "reviews": 0}
    out["appeals"] = db.scalar(select(func.count()).select_from(
        scope_appeals(select(Appeal.id), user).where(Appeal.status == "pending").subquery())) or 0
    if can_review(user):
        out["reviews"] = open_findings(db)
    return out


BADGE_TTL = 10.0  # seconds the review badge's count may be old (issue 13)
cache.drop_on_commit(DBSession, (Finding, Conversation, Appeal, Score))


def open_findings(db: DBSession, *, fresh: bool = False) -> int:
    """Findings of current scores no inspector has looked at (the review badge, the same for every reviewer).
    A count over every call: at a million calls it takes seconds, so it is computed at most once per
    `BADGE_TTL` seconds per process (`fresh` counts now)."""
    def count() -> int:
        if rollup.built(db):
            return rollup.open_findings(db)  # issue 13: the daily rollup's open counts, exact at any moment
        return db.scalar(select(func.count(Finding.id)).join(Conversation, and_(
            Conversation.id == Finding.conversation_id, Conversation.current_score_id == Finding.score_id)).where(
            Finding.kind == "finding", Finding.status == "open")) or 0

    if fresh:
        return count()
    bind = db.get_bind()
    return cache.for_engine(getattr(bind, "engine", bind), "open_findings", BADGE_TTL).get("all", count)


# ---- agents and teams ------------------------------------------------------------------------------------------


def visible_agents(db: DBSession, user: User) -> list[Agent]:
    stmt = select(Agent).order_by(Agent.code)
    if user.role == "leader":
        stmt = stmt.where(Agent.team_id == user.team_id) if user.team_id else stmt.where(false())
    elif user.role == "agent":
        stmt = stmt.where(Agent.id == user.agent_id) if user.agent_id else stmt.where(false())
    return list(db.scalars(stmt))


def get_agent(db: DBSession, user: User, code: str) -> Agent:
    agent = db.scalar(select(Agent).where(Agent.code == code))
    if agent is None:
        raise NotFound("坐席不存在或无权查看")
    allowed = user.role in ("admin", "qa") or (user.role == "agent" and user.agent_id == agent.id) or (
        user.role == "leader" and user.team_id is not None and (
            agent.team_id == user.team_id or db.scalar(select(Conversation.id).where(
                Conversation.agent_id == agent.id, Conversation.team_id == user.team_id).limit(1)) is not None))
    if not allowed:
        raise NotFound("坐席不存在或无权查看")
    return agent


def visible_teams(db: DBSession, user: User) -> list[Team]:
    stmt = select(Team).order_by(Team.name)
    if user.role == "leader":
        stmt = stmt.where(Team.id == user.team_id) if user.team_id else stmt.where(false())
    elif user.role == "agent":
        return []
    return list(db.scalars(stmt))


def get_team(db: DBSession, user: User, team_id: int) -> Team:
    team = db.get(Team, team_id)
    if team is None or not (user.role in ("admin", "qa") or (user.role == "leader" and user.team_id == team_id)):
        raise NotFound("班组不存在或无权查看")
    return team


# ---- rulebooks, users, audit ---------------------------------------------------------------------------------


def list_rulebooks(db: DBSession) -> list[RulebookVersion]:
    order = case((RulebookVersion.status == "active", 0), else_=1)
    return list(db.scalars(select(RulebookVersion).order_by(order, RulebookVersion.created_at.desc())))


def rulebook_usage(db: DBSession) -> dict[int, int]:
    return dict(db.execute(select(Score.rulebook_id, func.count(Score.id)).group_by(Score.rulebook_id)).all())


def list_users(db: DBSession) -> list[User]:
    return list(db.scalars(select(User).order_by(User.role, User.username)))


def list_audit(db: DBSession, limit: int = 200, action: str | None = None) -> list[AuditEntry]:
    stmt = select(AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action.startswith(action, autoescape=True))
    return list(db.scalars(stmt.order_by(AuditEntry.id.desc()).limit(limit)))
