"""Training pages: agents take quizzes, run scenarios in a chat-like page and drill their own flagged sentences;
leaders assign practice with a due date and follow completion and weak rules; an agent's progress page shows
certification and practice beside QA scores. Thin adapters over `usecases.training*`."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from ..training.speech import MAX_BYTES, MAX_SECONDS
from . import api_training
from . import repository as repo
from .deps import Form, PageCtx, PageUser
from .errors import Invalid, NotFound
from .usecases import training as tr
from .usecases import training_progress as prog
from .web import redirect, render

pages = APIRouter(include_in_schema=False)

NOTICES = {"assigned": "练习已布置", "saved": "练习结果已保存"}
TYPES = {"single": "单选", "multiple": "多选", "truefalse": "判断", "rewrite": "改写"}


def _int(v: Any) -> int | None:
    s = str(v or "").strip()
    return int(s) if s.isdigit() else None


@pages.get("/training")
def home(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    user = p.user
    atts = prog.attempts_of(ctx, user.agent if user.role == "agent" else None, limit=20) if user.role == "agent" else []
    return render(request, "training.html", p, active="training", bank=tr.bank(ctx), assignments=prog.my_assignments(ctx),
                  attempts=atts, cert=prog.certification(ctx, atts) if user.role == "agent" else [], kinds=prog.KINDS,
                  module_name=partial(tr.module_name, ctx), notice=NOTICES.get(request.query_params.get("ok", "")),
                  load_errors=tr.loaded(ctx)[1] if user.role in ("admin", "qa") else [],
                  company_dir=tr.company_dir(ctx))


# ---- quiz ---------------------------------------------------------------------------------------------------


def _quiz_answers(form: dict[str, Any], qs: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q in qs:
        if q.type == "multiple":
            picked = [j for j in range(len(q.options)) if form.get(f"q_{q.id}_{j}") == "1"]
            out[q.id] = picked
        else:
            v = form.get(f"q_{q.id}")
            if q.type == "single" and v is not None and str(v).isdigit():
                out[q.id] = chr(65 + int(v))
            else:
                out[q.id] = v
    return out


@pages.get("/training/quiz/{module}")
def quiz_page(module: str, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    qs = tr.questions(ctx, module)
    return render(request, "training_quiz.html", p, active="training", module=tr.bank(ctx).modules[module], qs=qs,
                  types=TYPES, error=None, form={}, assignment=_int(request.query_params.get("assignment")))


@pages.post("/training/quiz/{module}")
def quiz_submit(module: str, request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    qs = tr.questions(ctx, module)
    asg = _int(form.get("assignment"))
    try:
        att = tr.submit_quiz(ctx, module, _quiz_answers(form, qs), asg)
    except Invalid as exc:
        return render(request, "training_quiz.html", p, status=422, active="training",
                      module=tr.bank(ctx).modules[module], qs=qs, types=TYPES, error=str(exc), form=form, assignment=asg)
    return redirect(f"/training/attempts/{att.id}", "saved")


# ---- scenario -----------------------------------------------------------------------------------------------


def _replies(form: dict[str, Any]) -> list[str]:
    n = _int(form.get("n")) or 0
    return [str(form.get(f"r{i}") or "") for i in range(min(n, tr.MAX_REPLIES + 1))]


def _scenario_page(request: Request, p: PageUser, run: tr.Run, asg: int | None, status: int = 200,
                   draft: str = "") -> Response:
    return render(request, "training_scenario.html", p, status=status, active="training", s=run.scenario,
                  session=run.session, error=run.error, assignment=asg, draft=draft, max_reply=tr.MAX_REPLY,
                  speech=tr.speech_enabled(), speech_seconds=int(MAX_SECONDS), transcript=run.transcript)


@pages.get("/training/scenarios/{sid}")
def scenario_page(sid: str, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    asg = _int(request.query_params.get("assignment"))
    return _scenario_page(request, p, tr.scenario_step(ctx, sid, [], None, asg), asg)


@pages.get("/training/scenarios/{sid}/script")
def scenario_script(sid: str, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    """The whole script for a trainer: every step's customer line, task, reference reply and branches."""
    ctx.require(("admin", "qa", "leader"), "只有组长、质检员和管理员可以查看场景脚本")
    return render(request, "training_script.html", p, active="training", s=tr.scenario(ctx, sid),
                  module_name=partial(tr.module_name, ctx))


@pages.post("/training/scenarios/{sid}")
def scenario_reply(sid: str, request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    asg = _int(form.get("assignment"))
    new = str(form.get("reply") or "")
    audio = form.get("audio")
    if isinstance(audio, UploadFile) and audio.filename:
        # a spoken reply: transcribed, then graded exactly like a typed one (a bad recording: 422, nothing stored)
        run = tr.scenario_spoken(ctx, sid, _replies(form), audio.file.read(MAX_BYTES + 1), audio.filename, asg)
    else:
        run = tr.scenario_step(ctx, sid, _replies(form), new, asg)
    if run.attempt is not None:
        return redirect(f"/training/attempts/{run.attempt.id}", "saved")
    return _scenario_page(request, p, run, asg, status=422 if run.error else 200, draft=new if run.error else "")


# ---- drill from real calls ---------------------------------------------------------------------------------------


def _drill(ctx: PageCtx, asg_id: int | None) -> dict[str, Any]:
    user = ctx.acting()
    if asg_id is not None:
        a = prog.get_assignment(ctx, asg_id)
        if a.kind != "drill":
            raise NotFound("练习任务不存在")
        return dict(a.params)
    if user.agent_id is None:
        raise NotFound("只有坐席账号有自己的通话可练")
    return tr.drill_items(ctx, user.agent_id)


@pages.get("/training/drill")
def drill_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    asg = _int(request.query_params.get("assignment"))
    return render(request, "training_drill.html", p, active="training", drill=_drill(ctx, asg), assignment=asg,
                  error=None, form={}, scen=tr.bank(ctx).scenarios)


@pages.post("/training/drill")
def drill_submit(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    asg = _int(form.get("assignment"))
    drill = _drill(ctx, asg)
    answers = {str(it["id"]): str(form.get(f"a_{it['id']}") or "") for it in drill["items"]}
    try:
        att = tr.submit_drill(ctx, drill["items"], answers, asg)
    except Invalid as exc:
        return render(request, "training_drill.html", p, status=422, active="training", drill=drill, assignment=asg,
                      error=str(exc), form=form, scen=tr.bank(ctx).scenarios)
    return redirect(f"/training/attempts/{att.id}", "saved")


# ---- results, leader's team page, an agent's progress ---------------------------------------------------------------


@pages.get("/training/attempts/{attempt_id}")
def attempt_page(attempt_id: int, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    a = tr.get_attempt(ctx, attempt_id)
    return render(request, "training_attempt.html", p, active="training", a=a, bank=tr.bank(ctx),
                  module_name=partial(tr.module_name, ctx), kinds=prog.KINDS, notice=NOTICES.get(request.query_params.get("ok", "")))


def _team_page(request: Request, p: PageUser, ctx: PageCtx, *, status: int = 200, error: str | None = None,
               form: dict[str, Any] | None = None) -> Response:
    team = _int(request.query_params.get("team"))
    return render(request, "training_team.html", p, status=status, active="training", view=prog.team_overview(ctx, team),
                  teams=repo.visible_teams(ctx.db, p.user), agents=repo.visible_agents(ctx.db, p.user), bank=tr.bank(ctx),
                  kinds=prog.KINDS, today=date.today(), error=error, form=form or {},
                  rule_names={r.id: r.name for r in tr.checker(ctx).rulebook.rules},
                  notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.get("/training/team")
def team_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    ctx.require(("admin", "qa", "leader"), "只有组长、质检员和管理员可以查看班组培训")
    return _team_page(request, p, ctx)


@pages.post("/training/assign")
def assign(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    kind = str(form.get("kind") or "")
    ref = str(form.get(f"ref_{kind}") or "")
    target = str(form.get("target") or "")
    try:
        due = date.fromisoformat(str(form.get("due") or ""))
    except ValueError:
        return _team_page(request, p, ctx, status=422, error="请选择截止日期", form=form)
    spec = prog.AssignSpec(kind=kind, ref=ref, due=due,
                           agent_code=target[2:] if target.startswith("a:") else None,
                           team_id=_int(target[2:]) if target.startswith("t:") else None)
    try:
        prog.assign(ctx, spec)
    except Invalid as exc:
        return _team_page(request, p, ctx, status=422, error=str(exc), form=form)
    return redirect("/training/team", "assigned")


@pages.get("/training/agents/{code}")
def agent_page(code: str, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    agent = repo.get_agent(ctx.db, p.user, code)
    atts = prog.attempts_of(ctx, agent)
    return render(request, "training_agent.html", p, active="training", agent=agent, attempts=atts,
                  cert=prog.certification(ctx, atts), weeks=prog.progress(ctx, agent), kinds=prog.KINDS,
                  module_name=partial(tr.module_name, ctx))


router = APIRouter()
router.include_router(pages)
router.include_router(api_training.router)  # the JSON API beside the pages (/api/training/...)
