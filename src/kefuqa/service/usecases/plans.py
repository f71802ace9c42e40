"""Review plans: what humans re-check in a week, drawn reproducibly and assigned to inspectors.

A plan samples, per agent, the week's calls that must be seen (every 红线 call, every call with a complaint,
every appealed call) plus N more drawn at random — or the N whose judgement-model findings are least
confident. The draw is seeded per plan and agent (`random.Random(f"{seed}:{agent}")`), so the same seed over
the same calls gives the same sample; the seed and the parameters are stored with the plan. The sampled calls
go to the inspectors with the fewest open assignments first (balanced load), each with a due date.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, insert, select

from .. import repository as repo
from ..errors import Invalid, NotFound
from ..models import (
    Appeal,
    Conversation,
    Finding,
    ReviewAssignment,
    ReviewPlan,
    Score,
    Team,
    User,
    utcnow,
)
from .context import Ctx

REVIEWERS = ("admin", "qa")
REASONS = {"fatal": "红线", "complaint": "客户投诉", "appeal": "申诉", "random": "随机抽样",
           "low_confidence": "模型置信度低"}
COMPLAINT_EVENT = "EVT001"
MAX_PER_AGENT = 50


@dataclass
class PlanSpec:
    """What a plan samples. `week` is any day of the week (local time); filters narrow the calls."""

    name: str
    week: date
    per_agent: int = 3
    include_fatal: bool = True
    include_complaint: bool = True
    include_appeal: bool = True
    order: str = "random"  # random | low_confidence
    team: int | None = None
    channel: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    rule: str | None = None
    inspectors: list[int] = field(default_factory=list)  # user ids; empty: every active inspector
    due_days: int = 3
    seed: int | None = None

    def check(self) -> None:
        if not self.name.strip() or len(self.name) > 200:
            raise Invalid("请填写计划名称（不超过 200 字）")
        if not 0 <= self.per_agent <= MAX_PER_AGENT:
            raise Invalid(f"每名坐席随机抽样数须在 0–{MAX_PER_AGENT} 之间")
        if self.order not in ("random", "low_confidence"):
            raise Invalid("抽样顺序须为 random（随机）或 low_confidence（置信度最低优先）")
        if not 1 <= self.due_days <= 60:
            raise Invalid("完成期限须在 1–60 天之间")
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            raise Invalid("最低分不能高于最高分")


@dataclass(frozen=True)
class Candidate:
    call: int
    agent: int | None
    must: str | None  # fatal | complaint | appeal: always reviewed
    confidence: float | None = None  # lowest judgement-model confidence among its findings


def draw(candidates: Iterable[Candidate], per_agent: int, seed: int, order: str = "random") -> list[tuple[int, str]]:
    """(call, reason) for each call sampled: every `must` call, then `per_agent` more per agent, drawn at random
    with a generator seeded by (seed, agent) — or the least confident first. Pure and deterministic: the
    candidates' order does not matter."""
    by_agent: dict[int | None, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_agent[c.agent].append(c)
    out: list[tuple[int, str]] = []
    for agent in sorted(by_agent, key=lambda a: (a is None, a or 0)):
        calls = sorted(by_agent[agent], key=lambda c: c.call)
        out.extend((c.call, c.must) for c in calls if c.must)
        rest = [c for c in calls if not c.must]
        if per_agent <= 0 or not rest:
            continue
        rng = random.Random(f"{seed}:{agent}")
        if order == "low_confidence":
            rng.shuffle(rest)  # ties (and calls without a model finding) in a seeded order
            rest.sort(key=lambda c: (c.confidence is None, c.confidence if c.confidence is not None else 0.0))
            out.extend((c.call, "low_confidence" if c.confidence is not None else "random") for c in rest[:per_agent])
        else:
            out.extend((c.call, "random") for c in rng.sample(rest, min(per_agent, len(rest))))
    return out


def balance(calls: Sequence[int], inspectors: Sequence[int], load: dict[int, int]) -> dict[int, int]:
    """Call → inspector: each call to the inspector with the fewest assignments so far (their open ones
    counted), ties to the lower id. Pure."""
    if not inspectors:
        raise Invalid("没有可分配的质检员")
    current = {i: load.get(i, 0) for i in inspectors}
    out: dict[int, int] = {}
    for call in calls:
        who = min(current, key=lambda i: (current[i], i))
        out[call] = who
        current[who] += 1
    return out


def week_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00 (local time) of the week of `day`, in UTC."""
    monday = day - timedelta(days=day.weekday())
    start = datetime.combine(monday, time.min, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)
    end = datetime.combine(monday + timedelta(days=7), time.min, tzinfo=ZoneInfo(tz)).astimezone(timezone.utc)
    return start, end


def _inspectors(ctx: Ctx, ids: list[int]) -> list[int]:
    stmt = select(User.id).where(User.role.in_(REVIEWERS), User.active.is_(True))
    if ids:
        found = list(ctx.db.scalars(stmt.where(User.id.in_(ids))))
        missing = sorted(set(ids) - set(found))
        if missing:
            raise Invalid(f"这些用户不是在职质检员：{', '.join(map(str, missing))}")
        return sorted(found)
    found = list(ctx.db.scalars(stmt.where(User.role == "qa").order_by(User.id)))
    return found or list(ctx.db.scalars(stmt.order_by(User.id)))


def _candidates(ctx: Ctx, spec: PlanSpec, start: datetime, end: datetime) -> list[Candidate]:
    db = ctx.db
    f = repo.CallFilter(team=spec.team, channel=spec.channel, score_min=spec.score_min, score_max=spec.score_max,
                        rule=spec.rule)
    base = repo.filtered_calls(ctx.acting(), f, ctx.settings.timezone).where(
        Conversation.call_at >= start, Conversation.call_at < end)
    week = base.with_only_columns(Conversation.id, Conversation.agent_id, Conversation.fatal,
                                  Conversation.current_score_id)
    rows = db.execute(week).all()
    ids = base.with_only_columns(Conversation.id).scalar_subquery()
    complaint: set[int] = set()
    appealed: set[int] = set()
    if spec.include_complaint:
        complaint = set(db.scalars(select(Finding.conversation_id).join(Conversation, and_(
            Conversation.id == Finding.conversation_id, Conversation.current_score_id == Finding.score_id)).where(
            Finding.rule == COMPLAINT_EVENT, Finding.conversation_id.in_(ids))))
    if spec.include_appeal:
        appealed = set(db.scalars(select(Appeal.conversation_id).where(Appeal.conversation_id.in_(ids))))
    confidence: dict[int, float] = {}
    if spec.order == "low_confidence":
        confidence = _lowest_confidence(ctx, [r[3] for r in rows if r[3]])
    out = []
    for cid, agent, fatal, score_id in rows:
        must = ("fatal" if fatal and spec.include_fatal else "complaint" if cid in complaint else
                "appeal" if cid in appealed else None)
        out.append(Candidate(cid, agent, must, confidence.get(score_id) if score_id else None))
    return out


def _lowest_confidence(ctx: Ctx, score_ids: list[int]) -> dict[int, float]:
    """Score id → the lowest confidence of a judgement-model finding in its report."""
    out: dict[int, float] = {}
    for i in range(0, len(score_ids), 2000):
        for sid, report in ctx.db.execute(select(Score.id, Score.report).where(Score.id.in_(score_ids[i:i + 2000]))):
            values = [float(f["confidence"]) for f in (report or {}).get("findings", [])
                      if isinstance(f, dict) and isinstance(f.get("confidence"), (int, float))]
            if values:
                out[sid] = min(values)
    return out


def create_plan(ctx: Ctx, spec: PlanSpec) -> ReviewPlan:
    """Sample the week's calls by `spec`, assign them, and record the plan (seed included)."""
    ctx.require(REVIEWERS, "只有质检员和管理员可以制定抽检计划")
    user = ctx.acting()
    spec.check()
    seed = spec.seed if spec.seed is not None else random.SystemRandom().randrange(1, 2**31 - 1)
    start, end = week_bounds(spec.week, ctx.settings.timezone)
    with ctx.transaction() as db:
        inspectors = _inspectors(ctx, spec.inspectors)
        candidates = _candidates(ctx, spec, start, end)
        sampled = draw(candidates, spec.per_agent, seed, spec.order)
        load = dict(db.execute(select(ReviewAssignment.inspector_id, func.count(ReviewAssignment.id)).where(
            ReviewAssignment.status == "open", ReviewAssignment.inspector_id.in_(inspectors))
            .group_by(ReviewAssignment.inspector_id)).all())
        who = balance([c for c, _ in sampled], inspectors, load)
        now = utcnow()
        due = now + timedelta(days=spec.due_days)
        params = {k: v for k, v in asdict(spec).items() if k not in ("name", "seed")}
        params["week"] = spec.week.isoformat()
        params["inspectors"] = inspectors
        summary = {"candidates": len(candidates), "sampled": len(sampled),
                   "reasons": dict(Counter(r for _, r in sampled)),
                   "inspectors": {str(k): v for k, v in Counter(who.values()).items()}}
        plan = ReviewPlan(name=spec.name.strip(), week_start=start, seed=seed, params=params, summary=summary,
                          created_by=user.id, created_at=now)
        db.add(plan)
        db.flush()
        if sampled:
            db.execute(insert(ReviewAssignment), [
                {"plan_id": plan.id, "conversation_id": c, "inspector_id": who[c], "reason": r, "due_at": due,
                 "status": "open"} for c, r in sampled])
        repo.audit(db, user, "plan.create", "review_plan", plan.id, ctx.ip, seed=seed, sampled=len(sampled),
                   week=spec.week.isoformat())
    return plan


# ---- reading plans and queues ------------------------------------------------------------------------------------


@dataclass
class Progress:
    total: int = 0
    done: int = 0
    overdue: int = 0

    @property
    def percent(self) -> int:
        return round(self.done * 100 / self.total) if self.total else 0


def list_plans(ctx: Ctx, limit: int = 100) -> list[tuple[ReviewPlan, Progress]]:
    ctx.require(REVIEWERS, "只有质检员和管理员可以查看抽检计划")
    plans = list(ctx.db.scalars(select(ReviewPlan).order_by(ReviewPlan.id.desc()).limit(limit)))
    prog = _progress(ctx, [p.id for p in plans])
    return [(p, prog.get(p.id, Progress())) for p in plans]


def _progress(ctx: Ctx, plan_ids: list[int], inspector: int | None = None) -> dict[int, Progress]:
    if not plan_ids:
        return {}
    now = utcnow()
    stmt = select(ReviewAssignment.plan_id, ReviewAssignment.status, func.count(ReviewAssignment.id),
                  func.sum(case((ReviewAssignment.due_at < now, 1), else_=0))).where(
        ReviewAssignment.plan_id.in_(plan_ids))
    if inspector is not None:
        stmt = stmt.where(ReviewAssignment.inspector_id == inspector)
    out: dict[int, Progress] = {}
    for plan_id, status, n, late in ctx.db.execute(stmt.group_by(ReviewAssignment.plan_id, ReviewAssignment.status)):
        p = out.setdefault(plan_id, Progress())
        p.total += int(n)
        if status == "done":
            p.done += int(n)
        else:
            p.overdue += int(late or 0)
    return out


@dataclass
class PlanView:
    plan: ReviewPlan
    progress: Progress
    per_inspector: list[tuple[str, Progress]]
    assignments: list[tuple[ReviewAssignment, Conversation, str]]  # with the inspector's name


def get_plan(ctx: Ctx, plan_id: int) -> PlanView:
    ctx.require(REVIEWERS, "只有质检员和管理员可以查看抽检计划")
    plan = ctx.db.get(ReviewPlan, plan_id)
    if plan is None:
        raise NotFound("抽检计划不存在")
    rows = ctx.db.execute(select(ReviewAssignment, Conversation).join(
        Conversation, Conversation.id == ReviewAssignment.conversation_id).where(ReviewAssignment.plan_id == plan_id)
        .order_by(ReviewAssignment.status.desc(), ReviewAssignment.inspector_id, Conversation.call_at)).all()
    names = repo.user_names(ctx.db, {a.inspector_id for a, _ in rows})
    per: dict[int, Progress] = defaultdict(Progress)
    now = utcnow()
    total = Progress()
    for a, _ in rows:
        for p in (per[a.inspector_id], total):
            p.total += 1
            p.done += a.status == "done"
            p.overdue += a.status != "done" and _aware(a.due_at) < now
    return PlanView(plan, total, [(names.get(i, str(i)), p) for i, p in sorted(per.items())],
                    [(a, c, names.get(a.inspector_id, "")) for a, c in rows])


def conditions(ctx: Ctx, plan: ReviewPlan) -> list[str]:
    """The sampling conditions recorded with a plan, in words (with its seed they reproduce the sample)."""
    p = plan.params or {}
    out = [f"每名坐席{'按模型置信度最低优先' if p.get('order') == 'low_confidence' else '随机'}抽 {p.get('per_agent', 0)} 通"]
    must = [label for key, label in (("include_fatal", "红线"), ("include_complaint", "客户投诉"), ("include_appeal", "申诉"))
            if p.get(key, True)]
    out.append("必抽：" + ("、".join(must) if must else "无"))
    if p.get("team") is not None:
        name = ctx.db.scalar(select(Team.name).where(Team.id == p["team"]))
        out.append(f"班组：{name or p['team']}")
    if p.get("channel"):
        out.append(f"渠道：{p['channel']}")
    if p.get("score_min") is not None or p.get("score_max") is not None:
        low = "" if p.get("score_min") is None else f"{p['score_min']:g}"
        high = "" if p.get("score_max") is None else f"{p['score_max']:g}"
        out.append(f"分数：{low}–{high}")
    if p.get("rule"):
        out.append(f"规则：{p['rule']}")
    names = repo.user_names(ctx.db, set(p.get("inspectors") or []))
    if names:
        out.append("质检员：" + "、".join(names.get(i, str(i)) for i in p.get("inspectors") or []))
    out.append(f"完成期限 {p.get('due_days', 3)} 天")
    return out


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


@dataclass
class QueueItem:
    assignment: ReviewAssignment
    call: Conversation
    plan: str
    open_findings: int
    overdue: bool


def my_queue(ctx: Ctx, show_done: bool = False, limit: int = 200) -> tuple[list[QueueItem], Progress]:
    """The acting inspector's assignments (open first, earliest due first) and their progress."""
    user = ctx.acting()
    ctx.require(REVIEWERS, "只有质检员和管理员有复核任务")
    db = ctx.db
    stmt = select(ReviewAssignment, Conversation, ReviewPlan.name).join(
        Conversation, Conversation.id == ReviewAssignment.conversation_id).join(
        ReviewPlan, ReviewPlan.id == ReviewAssignment.plan_id).where(ReviewAssignment.inspector_id == user.id)
    if not show_done:
        stmt = stmt.where(ReviewAssignment.status == "open")
    rows = db.execute(stmt.order_by(ReviewAssignment.status.desc(), ReviewAssignment.due_at,
                                    ReviewAssignment.id).limit(limit)).all()
    counts = repo.finding_counts(db, [c for _, c, _ in rows])
    now = utcnow()
    items = [QueueItem(a, c, name, counts.get(c.id, {}).get("open", 0), a.status != "done" and _aware(a.due_at) < now)
             for a, c, name in rows]
    prog = Progress()
    for status, n in db.execute(select(ReviewAssignment.status, func.count(ReviewAssignment.id)).where(
            ReviewAssignment.inspector_id == user.id).group_by(ReviewAssignment.status)):
        prog.total += int(n)
        prog.done += int(n) if status == "done" else 0
    prog.overdue = sum(1 for i in items if i.overdue)
    return items, prog


def get_assignment(ctx: Ctx, assignment_id: int) -> tuple[ReviewAssignment, Conversation]:
    """An assignment of the acting inspector (an administrator may open anyone's)."""
    user = ctx.acting()
    ctx.require(REVIEWERS, "只有质检员和管理员有复核任务")
    row = ctx.db.execute(select(ReviewAssignment, Conversation).join(
        Conversation, Conversation.id == ReviewAssignment.conversation_id).where(
        ReviewAssignment.id == assignment_id)).first()
    if row is None or (user.role != "admin" and row[0].inspector_id != user.id):
        raise NotFound("复核任务不存在或不属于您")
    return row[0], row[1]


def finish(ctx: Ctx, assignment_id: int) -> ReviewAssignment:
    """Mark an assignment reviewed."""
    with ctx.transaction() as db:
        a, conv = get_assignment(ctx, assignment_id)
        if a.status != "done":
            a.status, a.done_at = "done", utcnow()
            repo.audit(db, ctx.user, "assignment.done", "review_assignment", a.id, ctx.ip, call=conv.call_id)
    return a


def reason_label(reason: str) -> str:
    return REASONS.get(reason, reason)
