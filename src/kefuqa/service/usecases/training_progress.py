"""Assignments, certification and progress: a leader assigns a quiz, a scenario or a drill to an agent or a
team with a due date and follows completion and weak rules; an agent's certification per module (pass mark,
attempts, history) and practice results beside QA scores week by week."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from .. import repository as repo
from ..errors import Invalid, NotFound
from ..models import Agent, Conversation, TrainingAssignment, TrainingAttempt, utcnow
from .context import Ctx
from .training import bank, drill_items, module_name, scenario

KINDS = {"quiz": "答题", "scenario": "情景练习", "drill": "真实通话改写"}


@dataclass
class AssignSpec:
    kind: str
    ref: str
    due: date
    agent_code: str | None = None
    team_id: int | None = None


def _title(ctx: Ctx, kind: str, ref: str) -> str:
    if kind == "quiz":
        return f"答题：{module_name(ctx, ref)}"
    if kind == "scenario":
        return f"情景练习：{scenario(ctx, ref).title}"
    return "真实通话改写练习"


def assign(ctx: Ctx, spec: AssignSpec) -> list[TrainingAssignment]:
    """One assignment per agent (the agent, or every agent of the team), all stored or none."""
    ctx.require(("admin", "qa", "leader"), "只有组长、质检员和管理员可以布置练习")
    user = ctx.acting()
    if spec.kind not in KINDS:
        raise Invalid("请选择练习类型")
    if spec.kind == "quiz" and spec.ref not in bank(ctx).modules:
        raise Invalid("请选择答题模块")
    if spec.kind == "scenario":
        scenario(ctx, spec.ref)
    if spec.kind == "drill":
        spec.ref = ""
    if spec.due < date.today():
        raise Invalid("截止日期不能早于今天")
    tz = ZoneInfo(ctx.settings.timezone)
    due_at = datetime.combine(spec.due, time(23, 59, 59), tz)
    if spec.agent_code:
        agents = [repo.get_agent(ctx.db, user, spec.agent_code)]
    elif spec.team_id is not None:
        team = repo.get_team(ctx.db, user, spec.team_id)
        agents = list(ctx.db.scalars(select(Agent).where(Agent.team_id == team.id).order_by(Agent.code)))
        if not agents:
            raise Invalid(f"班组「{team.name}」没有坐席")
    else:
        raise Invalid("请选择坐席或班组")
    made: list[TrainingAssignment] = []
    params: dict[int, dict[str, Any]] = {}
    if spec.kind == "drill":
        for ag in agents:
            d = drill_items(ctx, ag.id)
            if not d["items"]:
                raise Invalid(f"坐席 {ag.code} 最近的通话没有可改写的扣分语句，无法生成改写练习（未布置）")
            params[ag.id] = d
    title = _title(ctx, spec.kind, spec.ref)
    with ctx.transaction() as db:
        for ag in agents:
            a = TrainingAssignment(kind=spec.kind, ref=spec.ref, title=title, agent_id=ag.id, due_at=due_at,
                                   params=params.get(ag.id, {}), status="open", created_by=user.id,
                                   created_at=utcnow())
            db.add(a)
            made.append(a)
        db.flush()
        repo.audit(db, user, "training.assign", "training_assignment", made[0].id if made else None, ctx.ip,
                   kind=spec.kind, ref=spec.ref, agents=[ag.code for ag in agents], due=spec.due.isoformat())
    return made


def get_assignment(ctx: Ctx, assignment_id: int) -> TrainingAssignment:
    user = ctx.acting()
    a = ctx.db.get(TrainingAssignment, assignment_id)
    ok = a is not None and (user.role in ("admin", "qa") or (user.role == "agent" and a.agent_id == user.agent_id)
                            or (user.role == "leader" and a.agent_id in {x.id for x in repo.visible_agents(ctx.db, user)}))
    if a is None or not ok:
        raise NotFound("练习任务不存在或无权查看")
    return a


def my_assignments(ctx: Ctx) -> list[TrainingAssignment]:
    user = ctx.acting()
    if user.agent_id is None:
        return []
    return list(ctx.db.scalars(select(TrainingAssignment).where(TrainingAssignment.agent_id == user.agent_id)
                               .order_by(TrainingAssignment.status.desc(), TrainingAssignment.due_at)))


def attempts_of(ctx: Ctx, agent: Agent | None = None, limit: int = 200) -> list[TrainingAttempt]:
    """Attempts in scope: an agent only their own; others an agent they may see."""
    user = ctx.acting()
    stmt = select(TrainingAttempt).order_by(TrainingAttempt.created_at.desc()).limit(limit)
    if user.role == "agent":
        stmt = stmt.where(TrainingAttempt.user_id == user.id)
    elif agent is not None:
        stmt = stmt.where(TrainingAttempt.agent_id == agent.id)
    elif user.role == "leader":
        stmt = stmt.where(TrainingAttempt.agent_id.in_([a.id for a in repo.visible_agents(ctx.db, user)]))
    return list(ctx.db.scalars(stmt))


def certification(ctx: Ctx, attempts: list[TrainingAttempt]) -> list[dict[str, Any]]:
    """Per module: pass mark, quiz attempts, best score, certified (a quiz at or above the pass mark) and when."""
    out = []
    b = bank(ctx)
    for m in b.modules.values():
        quiz = sorted((a for a in attempts if a.kind == "quiz" and a.module == m.id), key=lambda a: a.created_at)
        scen = [a for a in attempts if a.kind == "scenario" and a.module == m.id]
        passed = [a for a in quiz if a.score >= m.pass_mark]
        out.append({"id": m.id, "name": m.name, "pass_mark": m.pass_mark, "attempts": len(quiz),
                    "best": max((a.score for a in quiz), default=None), "certified": bool(passed),
                    "certified_at": passed[0].created_at if passed else None,
                    "scenarios_passed": len({a.ref for a in scen if a.passed}),
                    "scenarios": len([s for s in b.scenarios.values() if s.module == m.id])})
    return out


def _week(dt: datetime, tz: str) -> date:
    d = repo.local_day(dt, tz)
    return d - timedelta(days=d.weekday())


def progress(ctx: Ctx, agent: Agent, weeks: int = 12) -> list[dict[str, Any]]:
    """Week by week: the agent's mean QA score on scored calls beside their practice (attempts, mean score)."""
    user = ctx.acting()
    tz = ctx.settings.timezone
    since = utcnow() - timedelta(weeks=weeks)
    calls = ctx.db.execute(repo.scope_calls(select(Conversation.call_at, Conversation.score).where(
        Conversation.agent_id == agent.id, Conversation.call_at >= since, Conversation.score.is_not(None)),
        user)).all()
    qa: dict[date, list[float]] = defaultdict(list)
    for at, score in calls:
        if score is not None:
            qa[_week(at, tz)].append(float(score))
    prac: dict[date, list[float]] = defaultdict(list)
    for a in attempts_of(ctx, agent, limit=2000):
        if a.created_at >= since:
            prac[_week(a.created_at, tz)].append(a.score)
    rows = []
    for wk in sorted(set(qa) | set(prac)):
        q, p = qa.get(wk, []), prac.get(wk, [])
        rows.append({"week": wk, "calls": len(q), "qa": sum(q) / len(q) if q else None,
                     "attempts": len(p), "practice": sum(p) / len(p) if p else None})
    return rows


def team_overview(ctx: Ctx, team_id: int | None = None) -> dict[str, Any]:
    """Per agent in scope: assignments done / open / overdue and certified modules; the team's weak rules in
    practice (what attempts tripped) beside the QA top rules."""
    ctx.require(("admin", "qa", "leader"), "只有组长、质检员和管理员可以查看班组培训")
    user = ctx.acting()
    agents = repo.visible_agents(ctx.db, user)
    if team_id is not None:
        agents = [a for a in agents if a.team_id == team_id]
    ids = [a.id for a in agents]
    asg = list(ctx.db.scalars(select(TrainingAssignment).where(TrainingAssignment.agent_id.in_(ids))
                              .order_by(TrainingAssignment.due_at.desc()))) if ids else []
    atts = list(ctx.db.scalars(select(TrainingAttempt).where(TrainingAttempt.agent_id.in_(ids)))) if ids else []
    now = utcnow()
    rows = []
    for ag in agents:
        mine = [a for a in asg if a.agent_id == ag.id]
        att = [a for a in atts if a.agent_id == ag.id]
        rows.append({"agent": ag, "done": sum(a.status == "done" for a in mine),
                     "open": sum(a.status == "open" and a.due_at >= now for a in mine),
                     "overdue": sum(a.status == "open" and a.due_at < now for a in mine),
                     "attempts": len(att), "certified": sum(c["certified"] for c in certification(ctx, att)),
                     "mean": sum(a.score for a in att) / len(att) if att else None})
    weak = Counter(r for a in atts for r in (a.rules or []))
    qa_top = repo.top_rules(ctx.db, user, team_id=team_id, limit=8) if ids else []
    total = len(asg)
    done = sum(a.status == "done" for a in asg)
    return {"rows": rows, "assignments": asg, "weak": weak.most_common(8), "qa_top": qa_top,
            "completion": (done / total) if total else None, "agents": {a.id: a for a in agents}}


def count_attempts(ctx: Ctx) -> int:
    return int(ctx.db.scalar(select(func.count(TrainingAttempt.id))) or 0)
