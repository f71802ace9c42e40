"""The JSON API (/api/...). OpenAPI: /api/openapi.json, browsable at /api/docs.

A thin adapter: pydantic schemas document the requests and answers, each action is a use case
(`service.usecases`), and the app turns their domain errors into status codes with `{"detail": message}`
(`deps.http_status`). Read-only endpoints put repository queries into views."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession

from . import repository as repo
from . import views
from .deps import DB, APICtx, APIUser, Principal, api_roles, client_ip, csv_download, token, workbench
from .errors import NotFound, RulebookProblem
from .models import Conversation, RulebookVersion, Score
from .rulebooks import MAX_RULEBOOK_BYTES
from .usecases import Ctx, auth, calls, reviews, rulebooks, uploads, users

router = APIRouter(prefix="/api")

Reviewer = Annotated[Principal, Depends(api_roles("admin", "qa"))]
Admin = Annotated[Principal, Depends(api_roles("admin"))]


async def _reviewer_ctx(request: Request, db: DB, p: Reviewer) -> Ctx:
    return Ctx(workbench(request), db, p.user, client_ip(request))


async def _admin_ctx(request: Request, db: DB, p: Admin) -> Ctx:
    return Ctx(workbench(request), db, p.user, client_ip(request))


# a use case's context, for these roles only (others get 403 before anything is read)
Uploader = Annotated[Ctx, Depends(_reviewer_ctx)]
ReviewerCtx = Annotated[Ctx, Depends(_reviewer_ctx)]
AdminCtx = Annotated[Ctx, Depends(_admin_ctx)]


def anonymous(request: Request, db: DBSession) -> Ctx:
    """The context of a request nobody is logged in for (login)."""
    return Ctx(workbench(request), db, None, client_ip(request))


# ---- schemas (documentation of the answers) ------------------------------------------------------------------


class LoginIn(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=200)


class LoginOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    expires_at: str
    user: dict[str, Any]


class ReviewIn(BaseModel):
    verdict: Literal["confirm", "reject"]
    reason: str | None = Field(default=None, max_length=2000, description="required to reject")


class AppealIn(BaseModel):
    reason: str = Field(min_length=2, max_length=2000)


class DecisionIn(BaseModel):
    decision: Literal["accept", "reject"] = Field(description="accept: the finding is withdrawn; reject: it stands")
    reason: str | None = Field(default=None, max_length=2000, description="required to reject")


class UserIn(BaseModel):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9_.\-@\u4e00-\u9fff]+$")
    display_name: str | None = Field(default=None, max_length=100)
    role: Literal["admin", "qa", "leader", "agent"]
    password: str | None = Field(default=None, max_length=200, description="generated when absent")
    team: str | None = Field(default=None, max_length=100, description="a leader's team name")
    agent_code: str | None = Field(default=None, max_length=100, description="an agent's own agent id")


class UserPatch(BaseModel):
    display_name: str | None = Field(default=None, max_length=100)
    role: Literal["admin", "qa", "leader", "agent"] | None = None
    team: str | None = Field(default=None, max_length=100)
    agent_code: str | None = Field(default=None, max_length=100)
    active: bool | None = None
    reset_password: bool = False


class PasswordIn(BaseModel):
    old_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


class UploadOut(BaseModel):
    rulebook: str
    stored: int
    unchanged: int
    conflicts: int
    errors: int
    results: list[dict[str, Any]]


# ---- auth ------------------------------------------------------------------------------------------------------


@router.post("/auth/login", response_model=LoginOut, tags=["auth"], summary="Log in and get a bearer token")
def login(body: LoginIn, request: Request, db: DB) -> Any:
    done = auth.login(anonymous(request, db), body.username, body.password, via="api")
    return {"token": done.session.token, "expires_at": views.iso(done.session.expires_at),
            "user": views.user_view(done.user)}


@router.post("/auth/logout", status_code=204, tags=["auth"], summary="End this token or session")
def logout(request: Request, ctx: APICtx) -> Response:
    auth.logout(ctx, token(request)[0], via="api")
    return Response(status_code=204)


@router.get("/me", tags=["auth"], summary="Who am I")
def me(p: APIUser) -> dict[str, Any]:
    return views.user_view(p.user)


@router.post("/me/password", status_code=204, tags=["auth"], summary="Change my password")
def change_password(body: PasswordIn, ctx: APICtx) -> Response:
    auth.change_password(ctx, body.old_password, body.new_password)
    return Response(status_code=204)


# ---- upload ----------------------------------------------------------------------------------------------------


@router.post("/uploads", response_model=UploadOut, tags=["conversations"],
             summary="Upload conversation files (all formats the CLI reads, audio included); score and store")
def upload_files(ctx: Uploader,
                 files: Annotated[list[UploadFile], File(description="transcripts, chat logs, ASR JSON, audio")],
                 replace: Annotated[bool, Form(description="replace stored calls with the same id")] = False) -> Any:
    return uploads.upload_files(ctx, [(f.filename or "upload", f.file.read()) for f in files], replace=replace)


@router.post("/conversations", response_model=UploadOut, tags=["conversations"],
             summary="Score and store conversations given as JSON (DESIGN §1): one object or a list")
def post_conversations(ctx: Uploader,
                       payload: Annotated[dict[str, Any] | list[dict[str, Any]], Body()],
                       replace: Annotated[bool, Query(description="replace stored calls with the same id")] = False,
                       ) -> Any:
    return uploads.post_conversations(ctx, payload if isinstance(payload, list) else [payload], replace=replace)


# ---- calls -----------------------------------------------------------------------------------------------------


def call_filter(
    agent: Annotated[str | None, Query(max_length=100, description="agent id (工号)")] = None,
    team: Annotated[int | None, Query(description="team id")] = None,
    date_from: Annotated[date | None, Query(description="first day (local time)")] = None,
    date_to: Annotated[date | None, Query(description="last day, included")] = None,
    score_min: Annotated[float | None, Query(ge=0, le=1000)] = None,
    score_max: Annotated[float | None, Query(ge=0, le=1000)] = None,
    rule: Annotated[str | None, Query(max_length=32, pattern=r"^[A-Za-z0-9_\-]+$",
                                      description="rule id or prefix: calls with such a finding")] = None,
    grade: Annotated[str | None, Query(max_length=32)] = None,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    q: Annotated[str | None, Query(max_length=100, description="call id contains")] = None,
    fatal: Annotated[bool | None, Query()] = None,
    review: Annotated[Literal["open", "done"] | None, Query(description="open: has unreviewed findings")] = None,
    sort: Annotated[Literal["call_at", "-call_at", "score", "-score", "call_id", "-call_id", "duration",
                            "-duration"], Query()] = "-call_at",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=repo.PAGE_MAX)] = 50,
) -> repo.CallFilter:
    return repo.CallFilter(agent=agent, team=team, date_from=date_from, date_to=date_to, score_min=score_min,
                           score_max=score_max, rule=rule, grade=grade, channel=channel, q=q, fatal=fatal,
                           review=review, sort=sort, page=page, page_size=page_size)


Filter = Annotated[repo.CallFilter, Depends(call_filter)]


@router.get("/calls", tags=["calls"], summary="List and filter calls (scoped by role)")
def list_calls(p: APIUser, db: DB, f: Filter, request: Request) -> dict[str, Any]:
    rows, total = repo.list_calls(db, p.user, f, workbench(request).settings.timezone)
    counts = repo.finding_counts(db, rows)
    items = []
    for c in rows:
        d = views.call_summary(c)
        d.update(counts.get(c.id, {"findings": 0, "open": 0}))
        items.append(d)
    return {"total": total, "page": f.page, "page_size": f.page_size, "items": items}


@router.get("/calls.csv", tags=["calls"], summary="CSV export of the filtered calls (UTF-8 with BOM)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_csv(ctx: APICtx, f: Filter) -> Response:
    return csv_download(calls.export_csv(ctx, f))


@router.get("/calls/{ref}", tags=["calls"], summary="One call: transcript, findings with review/appeal state, history")
def get_call(ref: str, ctx: APICtx) -> dict[str, Any]:
    db = ctx.db
    conv = calls.find_call(ctx, ref)
    score = repo.current_score(db, conv)
    findings = repo.call_findings(db, score.id) if score else []
    appeals = repo.appeals_for(db, [f.id for f in findings])
    return {
        **views.call_summary(conv),
        "conversation": dict(conv.data),
        "score_detail": views.score_view(score) if score else None,
        "findings": [views.finding_view(f, appeals.get(f.id)) for f in findings if f.kind == "finding"],
        "events": [views.finding_view(f) for f in findings if f.kind == "event"],
        "not_applicable": (score.report.get("not_applicable_reasons") if score else None) or {},
        "history": [views.score_view(s) for s in repo.score_history(db, conv)],
    }


@router.get("/calls/{ref}/report", tags=["calls"],
            summary="The findings report (DESIGN §3) of the current score, or of `score_id` from the history")
def get_report(ref: str, ctx: APICtx, score_id: int | None = None) -> Response:
    conv = calls.find_call(ctx, ref)
    row = ctx.db.execute(select(Score.report, Score.final_score, Score.grade).where(
        Score.id == (score_id or conv.current_score_id), Score.conversation_id == conv.id)).first()
    if row is None:
        raise NotFound("评分不存在")
    out = dict(row.report)
    out["final_score"] = row.final_score
    out["final_grade"] = row.grade
    return JSONResponse(out)  # already plain JSON data: no re-encoding pass


@router.post("/calls/{ref}/rescore", tags=["calls"],
             summary="Score again with the active rulebook (adds a score, keeps the history; admin, qa)")
def rescore(ref: str, ctx: APICtx) -> dict[str, Any]:
    return views.score_view(calls.rescore(ctx, ref))


# ---- findings, reviews, appeals --------------------------------------------------------------------------------


@router.post("/findings/{finding_id}/review", tags=["review"],
             summary="Inspector's verdict on a finding: confirm, or reject with a reason (admin, qa)")
def review(finding_id: int, body: ReviewIn, ctx: APICtx) -> dict[str, Any]:
    return views.finding_view(reviews.review_finding(ctx, finding_id, body.verdict, body.reason))


@router.get("/reviews/queue", tags=["review"], summary="Findings waiting for an inspector (admin, qa)")
def review_queue(p: APIUser, db: DB, rule: Annotated[str | None, Query(max_length=32)] = None,
                 team: int | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    rows, total = repo.review_queue(db, p.user, rule, team, limit)
    return {"total": total, "items": [{**views.finding_view(f), "call": views.call_summary(c)} for f, c in rows]}


@router.post("/findings/{finding_id}/appeal", status_code=201, tags=["appeals"],
             summary="An agent appeals a finding of their own call, with a reason (once per finding)")
def appeal(finding_id: int, body: AppealIn, ctx: APICtx) -> dict[str, Any]:
    return views.appeal_view(reviews.appeal_finding(ctx, finding_id, body.reason))


@router.get("/appeals", tags=["appeals"], summary="Appeals in scope (agents: their own; leaders: their team)")
def list_appeals(p: APIUser, db: DB,
                 status: Annotated[Literal["pending", "accepted", "rejected", "moot"] | None, Query()] = None,
                 ) -> list[dict[str, Any]]:
    return [views.appeal_view(a) | {"finding": views.finding_view(a.finding)}
            for a in repo.list_appeals(db, p.user, status)]


@router.post("/appeals/{appeal_id}/decision", tags=["appeals"],
             summary="Decide an appeal (admin, qa); final: no second appeal, no second decision")
def decide(appeal_id: int, body: DecisionIn, ctx: APICtx) -> dict[str, Any]:
    return views.appeal_view(reviews.decide_appeal(ctx, appeal_id, body.decision, body.reason))


# ---- agents, teams, statistics ---------------------------------------------------------------------------------


@router.get("/agents", tags=["stats"], summary="Agents in scope with their average score")
def agents(p: APIUser, db: DB, team: int | None = None, days: Annotated[int, Query(ge=1, le=3660)] = repo.DEFAULT_DAYS,
           ) -> list[dict[str, Any]]:
    return repo.agent_ranking(db, p.user, team, days)


@router.get("/agents/{code}", tags=["stats"], summary="An agent's trend, most violated rules and what to practise")
def agent_stats(code: str, p: APIUser, db: DB, request: Request,
                days: Annotated[int, Query(ge=1, le=3660)] = repo.DEFAULT_DAYS) -> dict[str, Any]:
    agent = repo.get_agent(db, p.user, code[:100])
    tz = workbench(request).settings.timezone
    s = repo.summary(db, p.user, tz, agent_id=agent.id, days=days)
    top = repo.top_rules(db, p.user, agent_id=agent.id, since=repo.utcnow() - timedelta(days=days))
    return {"agent": {"code": agent.code, "name": agent.name, "team": agent.team.name if agent.team else None},
            "calls": s.calls, "average": s.average, "fatal": s.fatal, "grades": s.grades,
            "insufficient": s.insufficient, "days": days,
            "trend": [{"date": d.isoformat(), "average": v, "calls": n} for d, v, n in s.trend],
            "top_rules": top,
            "practice": repo.practice(db, p.user, agent.id, [t["rule"] for t in top[:5]])}


@router.get("/teams", tags=["stats"], summary="Teams in scope")
def teams(p: APIUser, db: DB) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name} for t in repo.visible_teams(db, p.user)]


@router.get("/teams/{team_id}", tags=["stats"],
            summary="Team overview: score distribution, most violated rules, agents ranked")
def team_stats(team_id: int, p: APIUser, db: DB, request: Request,
               days: Annotated[int, Query(ge=1, le=3660)] = repo.DEFAULT_DAYS) -> dict[str, Any]:
    team = repo.get_team(db, p.user, team_id)
    tz = workbench(request).settings.timezone
    s = repo.summary(db, p.user, tz, team_id=team.id, days=days)
    return {"team": {"id": team.id, "name": team.name}, "calls": s.calls, "average": s.average, "fatal": s.fatal,
            "grades": s.grades, "distribution": dict(s.distribution),
            "trend": [{"date": d.isoformat(), "average": v, "calls": n} for d, v, n in s.trend],
            "top_rules": repo.top_rules(db, p.user, team_id=team.id, since=repo.utcnow() - timedelta(days=days)),
            "insufficient": s.insufficient, "days": days,
            "agents": repo.agent_ranking(db, p.user, team.id, days)}


@router.get("/rules/quality", tags=["rulebooks"],
            summary="Per rule: findings, confirmed, rejected, overturned, measured precision (admin)")
def rule_quality(p: Admin, db: DB) -> list[dict[str, Any]]:
    from .usecases.missed import with_recall  # issue 13: missed findings and recall beside precision

    return with_recall(db, repo.rule_quality(db, p.user))


@router.get("/rules/quality/models", tags=["rulebooks"],
            summary="Per judgement (intent) rule and model version: reviewed findings and precision (admin)")
def rule_quality_by_model(p: Admin, db: DB) -> list[dict[str, Any]]:
    from .usecases.learning import precision_by_model  # issue 8: before and after a retraining

    return [r | {"since": r["since"].isoformat()} for r in precision_by_model(db)]


# ---- rulebooks -------------------------------------------------------------------------------------------------


@router.get("/rulebooks", tags=["rulebooks"], summary="Rulebook versions (admin, qa)")
def list_rulebooks(p: Reviewer, db: DB) -> list[dict[str, Any]]:
    return [views.rulebook_view(r) for r in repo.list_rulebooks(db)]


@router.get("/rulebooks/{rulebook_id}", tags=["rulebooks"], summary="One rulebook version with its YAML and rules")
def get_rulebook(rulebook_id: int, ctx: ReviewerCtx) -> dict[str, Any]:
    return views.rulebook_view(rulebooks.get_rulebook(ctx, rulebook_id), with_content=True)


@router.post("/rulebooks", tags=["rulebooks"], summary="Upload a rulebook YAML: linted, kept as a draft (admin)")
def post_rulebook(ctx: AdminCtx,
                  file: Annotated[UploadFile, File(description="rulebook.yaml (may `extends` a bundled one)")],
                  ) -> Any:
    try:
        rec = rulebooks.upload_rulebook(ctx, file.filename or "rulebook.yaml", file.file.read(MAX_RULEBOOK_BYTES + 1))
    except RulebookProblem as exc:
        return JSONResponse({"detail": "规则集校验未通过", "errors": exc.errors}, status_code=422)
    return views.rulebook_view(rec)


@router.post("/rulebooks/{rulebook_id}/activate", tags=["rulebooks"],
             summary="Make this version the one new calls are scored with (admin)")
def activate_rulebook(rulebook_id: int, ctx: AdminCtx) -> dict[str, Any]:
    return views.rulebook_view(rulebooks.activate_rulebook(ctx, rulebook_id))


# ---- users, audit ----------------------------------------------------------------------------------------------


@router.get("/users", tags=["admin"], summary="Users (admin)")
def list_users(p: Admin, db: DB) -> list[dict[str, Any]]:
    return [views.user_view(u) for u in repo.list_users(db)]


def _saved(saved: users.Saved) -> dict[str, Any]:
    out = views.user_view(saved.user)
    if saved.password:
        out["password"] = saved.password
    return out


@router.post("/users", status_code=201, tags=["admin"], summary="Create a user (admin)")
def post_user(body: UserIn, ctx: AdminCtx) -> dict[str, Any]:
    return _saved(users.create_user(ctx, users.NewUser(**body.model_dump())))


@router.patch("/users/{user_id}", tags=["admin"], summary="Change a user's role, links, state or password (admin)")
def patch_user(user_id: int, body: UserPatch, ctx: AdminCtx) -> dict[str, Any]:
    return _saved(users.update_user(ctx, user_id, users.UserChanges(**body.model_dump())))


@router.get("/audit", tags=["admin"], summary="Audit log: who changed what (admin)")
def audit_log(p: Admin, db: DB, action: Annotated[str | None, Query(max_length=40)] = None,
              limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    return [{"id": e.id, "at": views.iso(e.at), "user": e.username, "action": e.action,
             "object_type": e.object_type, "object_id": e.object_id, "detail": e.detail, "ip": e.ip}
            for e in repo.list_audit(db, limit, action)]


@router.get("/health", tags=["meta"], summary="Liveness and the active rulebook")
def health(db: DB, request: Request) -> dict[str, Any]:
    rec = db.scalar(select(RulebookVersion).where(RulebookVersion.status == "active"))
    total = db.scalar(select(Conversation.id).order_by(Conversation.id.desc()).limit(1))
    return {"ok": True, "rulebook": f"{rec.name} {rec.version}" if rec else None, "has_calls": total is not None}

