"""Pages and API of review plans: plans (admin, qa), the inspector's queue, the whole-call review with missed
findings, and the training-example export."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from . import repository as repo
from .deps import APICtx, Form, PageCtx, PageUser, api_roles, page_roles
from .errors import Invalid, NotFound
from .models import Finding, User
from .usecases import missed, plans, reviews
from .web import highlight, redirect, render

pages = APIRouter(include_in_schema=False, dependencies=[Depends(page_roles("admin", "qa"))])
api_router = APIRouter(prefix="/api", tags=["抽检计划"], dependencies=[Depends(api_roles("admin", "qa"))])

NOTICES = {"plan": "抽检计划已生成并分配", "done": "已标记为复核完成", "missed": "已补充漏报",
           "missed_deleted": "已删除漏报", "reviewed": "复核结论已保存"}


def _int(v: Any) -> int | None:
    s = str(v or "").strip()
    if not s:
        return None
    if not s.lstrip("-").isdigit():
        raise Invalid(f"「{s}」不是整数")
    return int(s)


def _float(v: Any) -> float | None:
    s = str(v or "").strip()
    if not s:
        return None
    try:
        return float(s)
    except ValueError:
        raise Invalid(f"「{s}」不是数字") from None


def spec_from_form(form: dict[str, Any]) -> plans.PlanSpec:
    try:
        week = date.fromisoformat(str(form.get("week") or ""))
    except ValueError:
        raise Invalid("请选择抽检的周（任意一天）") from None
    return plans.PlanSpec(
        name=str(form.get("name") or ""), week=week, per_agent=_int(form.get("per_agent")) or 0,
        include_fatal=form.get("include_fatal") == "1", include_complaint=form.get("include_complaint") == "1",
        include_appeal=form.get("include_appeal") == "1", order=str(form.get("order") or "random"),
        team=_int(form.get("team")), channel=str(form.get("channel") or "").strip() or None,
        score_min=_float(form.get("score_min")), score_max=_float(form.get("score_max")),
        rule=str(form.get("rule") or "").strip().upper() or None,
        inspectors=sorted(int(k.split("_", 1)[1]) for k, v in form.items()
                          if k.startswith("inspector_") and k.split("_", 1)[1].isdigit() and v == "1"),
        due_days=_int(form.get("due_days")) or 3, seed=_int(form.get("seed")))


def _inspectors(ctx: PageCtx) -> list[User]:
    from sqlalchemy import select

    return list(ctx.db.scalars(select(User).where(User.role.in_(("admin", "qa")), User.active.is_(True))
                               .order_by(User.role.desc(), User.username)))


@pages.get("/plans")
def plans_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    return render(request, "plans.html", p, active="plans", rows=plans.list_plans(ctx), error=None, form={},
                  inspectors=_inspectors(ctx), teams=repo.visible_teams(ctx.db, p.user), today=date.today(),
                  notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.post("/plans")
def create_plan(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    try:
        plan = plans.create_plan(ctx, spec_from_form(form))
    except Invalid as exc:
        return render(request, "plans.html", p, status=422, active="plans", rows=plans.list_plans(ctx),
                      error=str(exc), form=form, inspectors=_inspectors(ctx), teams=repo.visible_teams(ctx.db, p.user),
                      today=date.today())
    return redirect(f"/plans/{plan.id}", "plan")


@pages.get("/plans/{plan_id}")
def plan_page(plan_id: int, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    view = plans.get_plan(ctx, plan_id)
    return render(request, "plan.html", p, active="plans", view=view, reason=plans.reason_label,
                  conditions=plans.conditions(ctx, view.plan),
                  notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.get("/queue")
def queue_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    show_done = request.query_params.get("done") == "1"
    items, prog = plans.my_queue(ctx, show_done)
    return render(request, "queue.html", p, active="queue", items=items, prog=prog, show_done=show_done,
                  reason=plans.reason_label, notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.get("/queue/{assignment_id}")
def assignment_page(assignment_id: int, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    a, conv = plans.get_assignment(ctx, assignment_id)
    db = ctx.db
    score = repo.current_score(db, conv)
    findings = [f for f in (repo.call_findings(db, score.id) if score else []) if f.kind == "finding"]
    per_utt: dict[int, list[Any]] = {}
    for f in findings:
        if f.utterance is not None:
            per_utt.setdefault(f.utterance, []).append(f)
    utterances = []
    for i, u in enumerate(conv.data.get("utterances") or []):
        text = str(u.get("text") or "")
        marks = [(f.span_start, f.span_end, f"sev-{f.severity or 'minor'}", f.rule) for f in per_utt.get(i, [])
                 if f.span_start is not None and f.span_end is not None and f.status not in ("rejected", "overturned")]
        utterances.append({"i": i, "role": u.get("role"), "start": u.get("start"),
                           "html": highlight(text, marks), "rules": [f.rule for f in per_utt.get(i, [])]})
    return render(request, "assignment.html", p, active="queue", a=a, conv=conv, score=score, findings=findings,
                  utterances=utterances, missed=missed.missed_for(ctx, conv.id), rules=missed.rule_choices(ctx),
                  reason=plans.reason_label, notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.post("/queue/{assignment_id}/findings/{finding_id}")
def assignment_review(assignment_id: int, finding_id: int, ctx: PageCtx, form: Form) -> Response:
    _, conv = plans.get_assignment(ctx, assignment_id)
    finding = ctx.db.get(Finding, finding_id)
    if finding is None or finding.conversation_id != conv.id:  # only the assignment's own call's findings
        raise NotFound("扣分项不属于这项复核任务")
    reviews.review_finding(ctx, finding_id, str(form.get("verdict") or ""), str(form.get("reason") or ""))
    return redirect(f"/queue/{assignment_id}#f{finding_id}", "reviewed")


@pages.post("/queue/{assignment_id}/missed")
def assignment_missed(assignment_id: int, ctx: PageCtx, form: Form) -> Response:
    _, conv = plans.get_assignment(ctx, assignment_id)
    missed.add_missed(ctx, conv.id, str(form.get("rule") or ""), str(form.get("utterance") or ""),
                      str(form.get("comment") or ""))
    return redirect(f"/queue/{assignment_id}#missed", "missed")


@pages.post("/queue/{assignment_id}/missed/{missed_id}/delete")
def assignment_missed_delete(assignment_id: int, missed_id: int, ctx: PageCtx, form: Form) -> Response:
    _, conv = plans.get_assignment(ctx, assignment_id)
    missed.delete_missed(ctx, missed_id, call_id=conv.id)
    return redirect(f"/queue/{assignment_id}#missed", "missed_deleted")


@pages.post("/queue/{assignment_id}/done")
def assignment_done(assignment_id: int, ctx: PageCtx, form: Form) -> Response:
    plans.finish(ctx, assignment_id)
    return redirect("/queue", "done")


@pages.get("/training-examples.jsonl")
def training_examples(ctx: PageCtx) -> Response:
    body = "".join(line + "\n" for line in missed.training_examples(ctx))
    return Response(body, media_type="application/x-ndjson; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="kefuqa-review-examples.jsonl"'})


# ---- API -----------------------------------------------------------------------------------------------------


class PlanIn(BaseModel):
    name: str = Field(max_length=200)
    week: date
    per_agent: int = 3
    include_fatal: bool = True
    include_complaint: bool = True
    include_appeal: bool = True
    order: str = "random"
    team: int | None = None
    channel: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    rule: str | None = None
    inspectors: list[int] = []
    due_days: int = 3
    seed: int | None = None


class MissedIn(BaseModel):
    rule: str
    utterance: int | None = None
    comment: str | None = None


def _plan_json(view: plans.PlanView) -> dict[str, Any]:
    plan = view.plan
    return {"id": plan.id, "name": plan.name, "seed": plan.seed, "week_start": plan.week_start.isoformat(),
            "params": plan.params, "summary": plan.summary,
            "progress": {"total": view.progress.total, "done": view.progress.done, "overdue": view.progress.overdue},
            "assignments": [{"id": a.id, "call": c.id, "call_id": c.call_id, "agent": c.agent.code if c.agent else None,
                             "inspector": a.inspector_id, "inspector_name": name, "reason": a.reason,
                             "due_at": a.due_at.isoformat(), "status": a.status} for a, c, name in view.assignments]}


@api_router.post("/plans", status_code=201)
def api_create_plan(body: PlanIn, ctx: APICtx) -> dict[str, Any]:
    """Sample a week's calls and assign them to inspectors (seeded: the same seed gives the same sample)."""
    plan = plans.create_plan(ctx, plans.PlanSpec(**body.model_dump()))
    return _plan_json(plans.get_plan(ctx, plan.id))


@api_router.get("/plans/{plan_id}")
def api_plan(plan_id: int, ctx: APICtx) -> dict[str, Any]:
    return _plan_json(plans.get_plan(ctx, plan_id))


@api_router.get("/queue")
def api_queue(ctx: APICtx, done: bool = False) -> dict[str, Any]:
    items, prog = plans.my_queue(ctx, done)
    return {"progress": {"total": prog.total, "done": prog.done, "overdue": prog.overdue},
            "items": [{"id": i.assignment.id, "call": i.call.id, "call_id": i.call.call_id, "plan": i.plan,
                       "reason": i.assignment.reason, "due_at": i.assignment.due_at.isoformat(),
                       "status": i.assignment.status, "open_findings": i.open_findings, "overdue": i.overdue}
                      for i in items]}


@api_router.post("/queue/{assignment_id}/done")
def api_done(assignment_id: int, ctx: APICtx) -> dict[str, Any]:
    a = plans.finish(ctx, assignment_id)
    return {"id": a.id, "status": a.status}


@api_router.post("/calls/{call_id}/missed", status_code=201)
def api_missed(call_id: int, body: MissedIn, ctx: APICtx) -> dict[str, Any]:
    """Add a violation the machine missed (rule, utterance index, comment)."""
    rec = missed.add_missed(ctx, call_id, body.rule, body.utterance, body.comment)
    return {"id": rec.id, "rule": rec.rule, "utterance": rec.utterance, "comment": rec.comment}


router = APIRouter()
router.include_router(pages)
router.include_router(api_router)
