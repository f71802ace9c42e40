"""The training JSON API (/api/training/...): the same use cases as the 培训练习 pages, the same role scoping (an
agent sees only their own attempts and assignments, a leader their team's; anything else is 404) and the same
Chinese errors (`{"detail": ...}`: 422 for a refused answer, nothing stored). Documented in docs/training.md."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from pydantic import BaseModel, Field

from ..training.speech import MAX_BYTES
from . import repository as repo
from .deps import APICtx
from .errors import Invalid, NotFound
from .models import TrainingAssignment, TrainingAttempt
from .usecases import training as tr
from .usecases import training_progress as prog

router = APIRouter(prefix="/api/training", tags=["培训练习"])

_HIDDEN = {"answer", "explain", "model", "require"}  # shown only after the attempt


# ---- schemas -----------------------------------------------------------------------------------------------


class QuizIn(BaseModel):
    answers: dict[str, Any] = Field(description="题目编号 → 答案：判断题 '+'/'-'，单选 'A'，多选 'AC' 或下标列表，改写题文字")
    assignment: int | None = Field(None, description="完成的练习任务编号（可选）")


class StepIn(BaseModel):
    replies: list[str] = Field(default_factory=list, description="到目前为止的回复（服务端不保存进行中的练习，每次重放）")
    reply: str | None = Field(None, description="新的一句回复；不填只返回当前状态")
    assignment: int | None = None


class DrillIn(BaseModel):
    answers: dict[str, str] = Field(description="题目编号 → 改写后的说法")
    assignment: int | None = None


class AssignIn(BaseModel):
    kind: str = Field(description="quiz | scenario | drill")
    ref: str = Field("", description="答题模块编号或场景编号（drill 不填）")
    due: date
    agent: str | None = Field(None, description="坐席工号（与 team 二选一）")
    team: int | None = Field(None, description="班组编号")


# ---- serialisers -----------------------------------------------------------------------------------------------


def _iso(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else v


def attempt_out(a: TrainingAttempt, detail: bool = False) -> dict[str, Any]:
    out = {"id": a.id, "kind": a.kind, "ref": a.ref, "module": a.module, "title": a.title, "score": a.score,
           "passed": a.passed, "correct": a.correct, "total": a.total, "rules": list(a.rules or []),
           "agent_id": a.agent_id, "assignment": a.assignment_id, "created_at": _iso(a.created_at)}
    if detail:
        out["detail"] = a.detail
    return out


def assignment_out(a: TrainingAssignment) -> dict[str, Any]:
    return {"id": a.id, "kind": a.kind, "ref": a.ref, "title": a.title, "agent_id": a.agent_id,
            "due_at": _iso(a.due_at), "status": a.status, "done_at": _iso(a.done_at),
            "created_at": _iso(a.created_at)}


def _run_out(run: tr.Run) -> dict[str, Any]:
    s = run.session
    return {"scenario": run.scenario.id, "title": run.scenario.title, "opening": s.opening_line(),
            "steps": [{"node": st.node, "reply": st.reply, "customer": st.customer, "labels": st.labels,
                       "feedback": st.feedback.to_dict()} for st in s.steps],
            "hint": "" if s.ended else s.node.hint, "ended": s.ended, "transcript": run.transcript,
            "attempt": attempt_out(run.attempt, detail=True) if run.attempt is not None else None}


# ---- catalogue ---------------------------------------------------------------------------------------------------


@router.get("/modules")
def modules(ctx: APICtx) -> list[dict[str, Any]]:
    """培训模块：及格线、题数、场景数。"""
    b = tr.bank(ctx)
    return [{"id": m.id, "name": m.name, "pass_mark": m.pass_mark, "description": m.description,
             "questions": len(b.questions_of(m.id)),
             "scenarios": sum(s.module == m.id for s in b.scenarios.values())} for m in b.modules.values()]


@router.get("/modules/{module}/questions")
def questions(module: str, ctx: APICtx) -> list[dict[str, Any]]:
    """一个模块的题目（不含答案与解析；作答后在结果里给出）。"""
    return [q.model_dump(exclude=_HIDDEN) for q in tr.questions(ctx, module)]


@router.post("/modules/{module}/quiz", status_code=201)
def quiz(module: str, body: QuizIn, ctx: APICtx) -> dict[str, Any]:
    """交卷：每题都要作答；逐题评分与反馈，保存为一次练习记录。"""
    return attempt_out(tr.submit_quiz(ctx, module, body.answers, body.assignment), detail=True)


@router.get("/scenarios")
def scenarios(ctx: APICtx) -> list[dict[str, Any]]:
    """所有练习场景。"""
    return [{"id": s.id, "module": s.module, "title": s.title, "brief": s.brief, "customer_style": s.customer_style,
             "rules": s.rules, "channel": s.channel} for s in tr.bank(ctx).scenarios.values()]


@router.get("/scenarios/{sid}")
def scenario(sid: str, ctx: APICtx) -> dict[str, Any]:
    """一个场景的开场（客户第一句、第一步的提示）。"""
    s = tr.scenario(ctx, sid)
    out = _run_out(tr.scenario_step(ctx, sid, [], None))
    out.update(brief=s.brief, customer_style=s.customer_style, speech=tr.speech_enabled())
    return out


@router.post("/scenarios/{sid}/step")
def step(sid: str, body: StepIn, ctx: APICtx) -> dict[str, Any]:
    """重放已有回复并加上新的一句：即时反馈与客户的下一句；结束时按真实通话评分并保存。被拒的回复 422（未保存）。"""
    run = tr.scenario_step(ctx, sid, body.replies, body.reply, body.assignment)
    if run.error:
        raise Invalid(f"{run.error}（未保存）")
    return _run_out(run)


@router.post("/scenarios/{sid}/speak")
def speak(sid: str, ctx: APICtx, audio: Annotated[UploadFile, File(description="一句回复的录音（WAV 等）")],
          replies: Annotated[str, Form(description="到目前为止的回复，JSON 字符串数组")] = "[]",
          assignment: Annotated[int | None, Form()] = None) -> dict[str, Any]:
    """说出的回复：服务端配置了语音识别时，录音先转写，再与打字回复完全一样地评分；`transcript` 是识别出的文字。"""
    try:
        prev = json.loads(replies or "[]")
    except ValueError:
        prev = None
    if not isinstance(prev, list) or not all(isinstance(r, str) for r in prev):
        raise Invalid("replies 应为字符串数组（JSON）")
    run = tr.scenario_spoken(ctx, sid, prev, audio.file.read(MAX_BYTES + 1), audio.filename or "录音",
                             assignment)
    if run.error:
        raise Invalid(f"{run.error}（未保存）")
    return _run_out(run)


# ---- drills, assignments, attempts, progress --------------------------------------------------------------------


@router.get("/drill")
def drill(ctx: APICtx, assignment: int | None = None) -> dict[str, Any]:
    """自己的真实通话改写练习（最常违反的规则、自己的扣分语句）；或一个已布置的改写练习。"""
    return _drill(ctx, assignment)


def _drill(ctx: APICtx, assignment: int | None) -> dict[str, Any]:
    if assignment is not None:
        a = prog.get_assignment(ctx, assignment)
        if a.kind != "drill":
            raise NotFound("练习任务不存在")
        return dict(a.params)
    user = ctx.acting()
    if user.agent_id is None:
        raise NotFound("只有坐席账号有自己的通话可练")
    return tr.drill_items(ctx, user.agent_id)


@router.get("/agents/{code}/drill")
def agent_drill(code: str, ctx: APICtx) -> dict[str, Any]:
    """某坐席的改写练习（坐席只能看自己，组长只能看本组）。"""
    agent = repo.get_agent(ctx.db, ctx.acting(), code)
    return tr.drill_items(ctx, agent.id)


@router.post("/drill", status_code=201)
def drill_submit(body: DrillIn, ctx: APICtx) -> dict[str, Any]:
    d = _drill(ctx, body.assignment)
    return attempt_out(tr.submit_drill(ctx, d["items"], body.answers, body.assignment), detail=True)


@router.get("/assignments")
def assignments(ctx: APICtx) -> list[dict[str, Any]]:
    """练习任务：坐席看自己的；组长看本组的；质检员和管理员看全部。"""
    user = ctx.acting()
    if user.role == "agent":
        rows = prog.my_assignments(ctx)
    else:
        rows = prog.team_overview(ctx)["assignments"]
    return [assignment_out(a) for a in rows]


@router.post("/assignments", status_code=201)
def assign(body: AssignIn, ctx: APICtx) -> list[dict[str, Any]]:
    """布置练习（组长、质检员、管理员）：给一个坐席或整个班组，带截止日期；全部布置或都不布置。"""
    spec = prog.AssignSpec(kind=body.kind, ref=body.ref, due=body.due, agent_code=body.agent, team_id=body.team)
    return [assignment_out(a) for a in prog.assign(ctx, spec)]


@router.get("/assignments/{assignment_id}")
def assignment(assignment_id: int, ctx: APICtx) -> dict[str, Any]:
    return assignment_out(prog.get_assignment(ctx, assignment_id))


@router.get("/attempts")
def attempts(ctx: APICtx, agent: Annotated[str | None, Query(description="坐席工号")] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """练习记录：坐席只看自己的；组长本组；质检员和管理员全部。"""
    user = ctx.acting()
    ag = repo.get_agent(ctx.db, user, agent) if agent else None
    if ag is not None and user.role == "agent" and ag.id != user.agent_id:
        raise NotFound("坐席不存在或无权查看")
    return [attempt_out(a) for a in prog.attempts_of(ctx, ag, limit=limit)]


@router.get("/attempts/{attempt_id}")
def attempt(attempt_id: int, ctx: APICtx) -> dict[str, Any]:
    return attempt_out(tr.get_attempt(ctx, attempt_id), detail=True)


@router.get("/agents/{code}/progress")
def progress(code: str, ctx: APICtx) -> dict[str, Any]:
    """认证（每个模块的及格线、次数、最好成绩、是否通过）与每周练习成绩和质检成绩对照。"""
    agent = repo.get_agent(ctx.db, ctx.acting(), code)
    atts = prog.attempts_of(ctx, agent)
    cert = [{k: _iso(v) for k, v in c.items()} for c in prog.certification(ctx, atts)]
    weeks = [{k: _iso(v) for k, v in w.items()} for w in prog.progress(ctx, agent)]
    return {"agent": agent.code, "certification": cert, "weeks": weeks, "attempts": len(atts)}


@router.get("/team")
def team(ctx: APICtx, team: int | None = None) -> dict[str, Any]:
    """班组培训概况（组长、质检员、管理员）：每个坐席完成、未完成、逾期、认证数；练习中的薄弱规则与质检高发规则。"""
    view = prog.team_overview(ctx, team)
    rows = [{"agent": r["agent"].code, "name": r["agent"].name, **{k: v for k, v in r.items() if k != "agent"}}
            for r in view["rows"]]
    return {"agents": rows, "completion": view["completion"],
            "weak": [{"rule": r, "count": n} for r, n in view["weak"]], "qa_top": view["qa_top"]}
