"""The JSON API (/api/...). OpenAPI: /api/openapi.json, browsable at /api/docs."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, File, Form, HTTPException, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from ..errors import InputError
from ..model import Conversation as ConversationModel
from . import repository as repo
from . import scoring, views
from .deps import DB, APIUser, Principal, api_roles, client_ip, workbench
from .models import ROLES, Agent, Conversation, Finding, RulebookVersion, Score, Team, User
from .security import (
    AuthError,
    authenticate,
    close_session,
    close_user_sessions,
    generate_password,
    hash_password,
    open_session,
    password_problem,
)
from .workbench import Item, Outcome, UploadError

router = APIRouter(prefix="/api")

Reviewer = Annotated[Principal, Depends(api_roles("admin", "qa"))]
Admin = Annotated[Principal, Depends(api_roles("admin"))]
Uploader = Annotated[Principal, Depends(api_roles("admin", "qa"))]


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
    s = workbench(request).settings
    try:
        user = authenticate(db, body.username, body.password, max_failed=s.max_failed_logins,
                            lockout_minutes=s.lockout_minutes)
    except AuthError as exc:
        repo.audit(db, None, "auth.fail", "user", body.username[:64], client_ip(request))
        db.commit()
        raise HTTPException(401, str(exc)) from None
    new = open_session(db, user, hours=s.session_hours, kind="api")
    repo.audit(db, user, "auth.login", "user", user.id, client_ip(request), via="api")
    db.commit()
    return {"token": new.token, "expires_at": views.iso(new.expires_at), "user": views.user_view(user)}


@router.post("/auth/logout", status_code=204, tags=["auth"], summary="End this token or session")
def logout(request: Request, p: APIUser, db: DB) -> Response:
    auth = request.headers.get("authorization", "")
    token = auth[7:].strip() if auth[:7].lower() == "bearer " else request.cookies.get("kefuqa_session")
    close_session(db, token)
    db.commit()
    return Response(status_code=204)


@router.get("/me", tags=["auth"], summary="Who am I")
def me(p: APIUser) -> dict[str, Any]:
    return views.user_view(p.user)


@router.post("/me/password", status_code=204, tags=["auth"], summary="Change my password")
def change_password(body: PasswordIn, p: APIUser, db: DB, request: Request) -> Response:
    from .security import verify_password

    user = db.get(User, p.user.id)
    assert user is not None
    if not verify_password(user.password_hash, body.old_password):
        raise HTTPException(403, "原密码不正确")
    problem = password_problem(body.new_password)
    if problem:
        raise HTTPException(422, problem)
    user.password_hash = hash_password(body.new_password)
    close_user_sessions(db, user.id)
    repo.audit(db, user, "user.password", "user", user.id, client_ip(request))
    db.commit()
    return Response(status_code=204)


# ---- upload ----------------------------------------------------------------------------------------------------


def _summary(rulebook: str, outcomes: list[Outcome]) -> dict[str, Any]:
    return {
        "rulebook": rulebook,
        "stored": sum(1 for o in outcomes if o.status in ("stored", "replaced")),
        "unchanged": sum(1 for o in outcomes if o.status == "unchanged"),
        "conflicts": sum(1 for o in outcomes if o.status == "conflict"),
        "errors": sum(1 for o in outcomes if o.status == "error"),
        "results": [o.to_dict() for o in outcomes],
    }


def _input_error(err: InputError) -> Outcome:
    return Outcome(None, "error", error=err.reason if not err.place else f"{err.place}: {err.reason}",
                   source=err.source)


def ingest_uploads(request: Request, p: Principal, files: list[tuple[str, bytes]], replace: bool) -> dict[str, Any]:
    """Shared by the API and the upload page: check, read, score and store the files."""
    wb = workbench(request)
    s = wb.settings
    if not files:
        raise HTTPException(422, "没有上传文件")
    if len(files) > s.max_files:
        raise HTTPException(413, f"一次最多上传 {s.max_files} 个文件")
    items: list[Item] = []
    errors: list[Outcome] = []
    for name, data in files:
        try:
            for got in wb.read_upload(name, data):
                if isinstance(got, InputError):
                    errors.append(_input_error(got))
                else:
                    items.append(got)
                if len(items) > s.max_conversations_per_request:
                    raise HTTPException(413, f"一次最多导入 {s.max_conversations_per_request} 通会话")
        except UploadError as exc:
            errors.append(Outcome(None, "error", error=str(exc), source=name[-255:]))
    done = wb.ingest(items, user_id=p.user.id, replace=replace)
    if errors:
        with wb.sessions() as db:
            repo.audit(db, p.user, "conversation.upload_errors", None, None, client_ip(request),
                       errors=[e.to_dict() for e in errors[:50]])
            db.commit()
    return _summary(done.rulebook or _active_label(wb), done.outcomes + errors)


def _active_label(wb: Any) -> str:
    with wb.sessions() as db:
        label = str(wb.active(db).label)
        db.commit()
    return label


@router.post("/uploads", response_model=UploadOut, tags=["conversations"],
             summary="Upload conversation files (all formats the CLI reads, audio included); score and store")
def upload_files(request: Request, p: Uploader,
                 files: Annotated[list[UploadFile], File(description="transcripts, chat logs, ASR JSON, audio")],
                 replace: Annotated[bool, Form(description="replace stored calls with the same id")] = False) -> Any:
    got = [(f.filename or "upload", f.file.read()) for f in files]
    return ingest_uploads(request, p, got, replace)


@router.post("/conversations", response_model=UploadOut, tags=["conversations"],
             summary="Score and store conversations given as JSON (DESIGN §1): one object or a list")
def post_conversations(request: Request, p: Uploader,
                       payload: Annotated[dict[str, Any] | list[dict[str, Any]], Body()],
                       replace: Annotated[bool, Query(description="replace stored calls with the same id")] = False,
                       ) -> Any:
    wb = workbench(request)
    records = payload if isinstance(payload, list) else [payload]
    if len(records) > wb.settings.max_conversations_per_request:
        raise HTTPException(413, f"一次最多导入 {wb.settings.max_conversations_per_request} 通会话")
    items: list[Item] = []
    errors: list[Outcome] = []
    for i, rec in enumerate(records):
        try:
            items.append(Item(ConversationModel.model_validate(rec), "api"))
        except ValidationError as exc:
            first = exc.errors()[0]
            place = ".".join(str(x) for x in first.get("loc", ()))
            errors.append(Outcome(str(rec.get("id")) if rec.get("id") is not None else None, "error",
                                  error=f"[{i}] {place}: {first.get('msg')}"))
    done = wb.ingest_shared(items, user_id=p.user.id, replace=replace)
    return _summary(done.rulebook or _active_label(wb), done.outcomes + errors)


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
    calls, total = repo.list_calls(db, p.user, f, workbench(request).settings.timezone)
    counts = repo.finding_counts(db, calls)
    items = []
    for c in calls:
        d = views.call_summary(c)
        d.update(counts.get(c.id, {"findings": 0, "open": 0}))
        items.append(d)
    return {"total": total, "page": f.page, "page_size": f.page_size, "items": items}


@router.get("/calls.csv", tags=["calls"], summary="CSV export of the filtered calls (UTF-8 with BOM)",
            response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def export_csv(p: APIUser, db: DB, f: Filter, request: Request) -> Response:
    return csv_response(db, p.user, f, workbench(request).settings.timezone, request)


def csv_response(db: Any, user: User, f: repo.CallFilter, tz: str, request: Request) -> Response:
    calls = repo.iter_calls(db, user, f, tz)
    score_ids = [c.current_score_id for c in calls if c.current_score_id]
    rules: dict[int, list[str]] = {}
    for chunk in range(0, len(score_ids), 5000):
        for cid, rule in db.execute(select(Finding.conversation_id, Finding.rule).where(
                Finding.score_id.in_(score_ids[chunk:chunk + 5000]), Finding.kind == "finding",
                Finding.status.not_in(("rejected", "overturned"))).order_by(Finding.id)):
            rules.setdefault(cid, []).append(rule)
    repo.audit(db, user, "export.csv", None, None, client_ip(request), count=len(calls), filters=f.params())
    db.commit()
    body = views.calls_csv(calls, rules, tz)
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="kefuqa-calls.csv"'})


def call_detail(db: Any, user: User, conv: Conversation) -> dict[str, Any]:
    score = repo.current_score(db, conv)
    findings = repo.call_findings(db, score.id) if score else []
    appeals = repo.appeals_for(db, [f.id for f in findings])
    data = dict(conv.data)
    return {
        **views.call_summary(conv),
        "conversation": data,
        "score_detail": views.score_view(score) if score else None,
        "findings": [views.finding_view(f, appeals.get(f.id)) for f in findings if f.kind == "finding"],
        "events": [views.finding_view(f) for f in findings if f.kind == "event"],
        "not_applicable": (score.report.get("not_applicable_reasons") if score else None) or {},
        "history": [views.score_view(s) for s in repo.score_history(db, conv)],
    }


@router.get("/calls/{ref}", tags=["calls"], summary="One call: transcript, findings with review/appeal state, history")
def get_call(ref: str, p: APIUser, db: DB) -> dict[str, Any]:
    conv = repo.get_call_by_ref(db, p.user, ref[:200])
    return call_detail(db, p.user, conv)


@router.get("/calls/{ref}/report", tags=["calls"],
            summary="The findings report (DESIGN §3) of the current score, or of `score_id` from the history")
def get_report(ref: str, p: APIUser, db: DB, score_id: int | None = None) -> Response:
    conv = repo.get_call_by_ref(db, p.user, ref[:200])
    row = db.execute(select(Score.report, Score.final_score, Score.grade).where(
        Score.id == (score_id or conv.current_score_id), Score.conversation_id == conv.id)).first()
    if row is None:
        raise repo.NotFound("评分不存在")
    out = dict(row.report)
    out["final_score"] = row.final_score
    out["final_grade"] = row.grade
    return JSONResponse(out)  # already plain JSON data: no re-encoding pass


@router.post("/calls/{ref}/rescore", tags=["calls"],
             summary="Score again with the active rulebook (adds a score, keeps the history)")
def rescore(ref: str, p: Reviewer, db: DB, request: Request) -> dict[str, Any]:
    conv = repo.get_call_by_ref(db, p.user, ref[:200])
    score = workbench(request).rescore(db, conv, user_id=p.user.id)
    repo.audit(db, p.user, "conversation.rescore", "conversation", conv.id, client_ip(request),
               rulebook=f"{score.rulebook.name} {score.rulebook.version}")
    db.commit()
    return views.score_view(score)


# ---- findings, reviews, appeals --------------------------------------------------------------------------------


@router.post("/findings/{finding_id}/review", tags=["review"],
             summary="Inspector's verdict on a finding: confirm, or reject with a reason (admin, qa)")
def review(finding_id: int, body: ReviewIn, p: APIUser, db: DB, request: Request) -> dict[str, Any]:
    f = repo.review_finding(db, workbench(request), p.user, finding_id, body.verdict, body.reason,
                            client_ip(request))
    db.commit()
    return views.finding_view(f)


@router.get("/reviews/queue", tags=["review"], summary="Findings waiting for an inspector (admin, qa)")
def review_queue(p: APIUser, db: DB, rule: Annotated[str | None, Query(max_length=32)] = None,
                 team: int | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    rows, total = repo.review_queue(db, p.user, rule, team, limit)
    return {"total": total, "items": [{**views.finding_view(f), "call": views.call_summary(c)} for f, c in rows]}


@router.post("/findings/{finding_id}/appeal", status_code=201, tags=["appeals"],
             summary="An agent appeals a finding of their own call, with a reason (once per finding)")
def appeal(finding_id: int, body: AppealIn, p: APIUser, db: DB, request: Request) -> dict[str, Any]:
    a = repo.appeal_finding(db, p.user, finding_id, body.reason, client_ip(request))
    db.commit()
    return views.appeal_view(a)


@router.get("/appeals", tags=["appeals"], summary="Appeals in scope (agents: their own; leaders: their team)")
def list_appeals(p: APIUser, db: DB,
                 status: Annotated[Literal["pending", "accepted", "rejected"] | None, Query()] = None,
                 ) -> list[dict[str, Any]]:
    return [views.appeal_view(a) | {"finding": views.finding_view(a.finding)}
            for a in repo.list_appeals(db, p.user, status)]


@router.post("/appeals/{appeal_id}/decision", tags=["appeals"],
             summary="Decide an appeal (admin, qa); final: no second appeal, no second decision")
def decide(appeal_id: int, body: DecisionIn, p: APIUser, db: DB, request: Request) -> dict[str, Any]:
    a = repo.decide_appeal(db, p.user, appeal_id, body.decision, body.reason, client_ip(request))
    db.commit()
    return views.appeal_view(a)


# ---- agents, teams, statistics ---------------------------------------------------------------------------------


@router.get("/agents", tags=["stats"], summary="Agents in scope with their average score")
def agents(p: APIUser, db: DB, team: int | None = None, days: Annotated[int, Query(ge=1, le=3660)] = 90,
           ) -> list[dict[str, Any]]:
    return repo.agent_ranking(db, p.user, team, days)


@router.get("/agents/{code}", tags=["stats"], summary="An agent's trend, most violated rules and what to practise")
def agent_stats(code: str, p: APIUser, db: DB, request: Request,
                days: Annotated[int, Query(ge=1, le=3660)] = 90) -> dict[str, Any]:
    agent = repo.get_agent(db, p.user, code[:100])
    tz = workbench(request).settings.timezone
    s = repo.summary(db, p.user, tz, agent_id=agent.id, days=days)
    top = repo.top_rules(db, p.user, agent_id=agent.id)
    return {"agent": {"code": agent.code, "name": agent.name, "team": agent.team.name if agent.team else None},
            "calls": s.calls, "average": s.average, "fatal": s.fatal, "grades": s.grades,
            "trend": [{"date": d.isoformat(), "average": v, "calls": n} for d, v, n in s.trend],
            "top_rules": top,
            "practice": repo.practice(db, p.user, agent.id, [t["rule"] for t in top[:5]])}


@router.get("/teams", tags=["stats"], summary="Teams in scope")
def teams(p: APIUser, db: DB) -> list[dict[str, Any]]:
    return [{"id": t.id, "name": t.name} for t in repo.visible_teams(db, p.user)]


@router.get("/teams/{team_id}", tags=["stats"],
            summary="Team overview: score distribution, most violated rules, agents ranked")
def team_stats(team_id: int, p: APIUser, db: DB, request: Request,
               days: Annotated[int, Query(ge=1, le=3660)] = 90) -> dict[str, Any]:
    team = repo.get_team(db, p.user, team_id)
    tz = workbench(request).settings.timezone
    s = repo.summary(db, p.user, tz, team_id=team.id, days=days)
    return {"team": {"id": team.id, "name": team.name}, "calls": s.calls, "average": s.average, "fatal": s.fatal,
            "grades": s.grades, "distribution": dict(s.distribution),
            "trend": [{"date": d.isoformat(), "average": v, "calls": n} for d, v, n in s.trend],
            "top_rules": repo.top_rules(db, p.user, team_id=team.id),
            "agents": repo.agent_ranking(db, p.user, team.id, days)}


@router.get("/rules/quality", tags=["rulebooks"],
            summary="Per rule: findings, confirmed, rejected, overturned, measured precision (admin)")
def rule_quality(p: Admin, db: DB) -> list[dict[str, Any]]:
    return repo.rule_quality(db, p.user)


# ---- rulebooks -------------------------------------------------------------------------------------------------


@router.get("/rulebooks", tags=["rulebooks"], summary="Rulebook versions (admin, qa)")
def rulebooks(p: Reviewer, db: DB) -> list[dict[str, Any]]:
    return [views.rulebook_view(r) for r in repo.list_rulebooks(db)]


@router.get("/rulebooks/{rulebook_id}", tags=["rulebooks"], summary="One rulebook version with its YAML and rules")
def rulebook(rulebook_id: int, p: Reviewer, db: DB) -> dict[str, Any]:
    r = db.get(RulebookVersion, rulebook_id)
    if r is None:
        raise repo.NotFound("规则集不存在")
    return views.rulebook_view(r, with_content=True)


def upload_rulebook(request: Request, p: Principal, db: Any, name: str, data: bytes) -> tuple[RulebookVersion | None,
                                                                                            list[dict[str, Any]]]:
    """Lint an uploaded rulebook and keep it as a draft version; returns (version or None, errors)."""
    from .workbench import safe_filename

    filename = safe_filename(name)
    try:
        rb, text = scoring.lint_upload(data, filename)
    except scoring.RulebookProblem as exc:
        repo.audit(db, p.user, "rulebook.lint_failed", "rulebook", filename, client_ip(request), errors=exc.errors)
        db.commit()
        return None, exc.errors
    rec = scoring.register(db, rb, origin="upload", content=text, filename=filename, user_id=p.user.id)
    repo.audit(db, p.user, "rulebook.upload", "rulebook", rec.id, client_ip(request), name=rec.name,
               version=rec.version)
    db.commit()
    return rec, []


@router.post("/rulebooks", tags=["rulebooks"], summary="Upload a rulebook YAML: linted, kept as a draft (admin)")
def post_rulebook(request: Request, p: Admin, db: DB,
                  file: Annotated[UploadFile, File(description="rulebook.yaml (may `extends` a bundled one)")],
                  ) -> Any:
    rec, errors = upload_rulebook(request, p, db, file.filename or "rulebook.yaml",
                                  file.file.read(scoring.MAX_RULEBOOK_BYTES + 1))
    if rec is None:
        return JSONResponse({"detail": "规则集校验未通过", "errors": errors}, status_code=422)
    return views.rulebook_view(rec)


@router.post("/rulebooks/{rulebook_id}/activate", tags=["rulebooks"],
             summary="Make this version the one new calls are scored with (admin)")
def activate_rulebook(rulebook_id: int, p: Admin, db: DB, request: Request) -> dict[str, Any]:
    return views.rulebook_view(activate_version(request, p.user, db, rulebook_id))


def activate_version(request: Request, user: Any, db: Any, rulebook_id: int) -> RulebookVersion:
    """Shared by the API and the rulebook page: check it loads, activate it, audit, commit."""
    rec = db.get(RulebookVersion, rulebook_id)
    if rec is None:
        raise repo.NotFound("规则集不存在")
    workbench(request).rulebooks.get(db, rec.id)  # it loads, or this raises before anything changes
    try:
        scoring.activate(db, rec)
    except ValueError as exc:
        raise repo.Conflict(str(exc)) from None
    repo.audit(db, user, "rulebook.activate", "rulebook", rec.id, client_ip(request), name=rec.name,
               version=rec.version)
    db.commit()
    workbench(request).forget_active()
    return rec


# ---- users, audit ----------------------------------------------------------------------------------------------


def resolve_links(db: Any, role: str, team: str | None, agent_code: str | None) -> tuple[int | None, int | None]:
    team_id = agent_id = None
    if role == "leader":
        if not team:
            raise repo.Invalid("组长须指定所带班组")
        row = db.scalar(select(Team).where(Team.name == team.strip()))
        if row is None:
            row = Team(name=team.strip())
            db.add(row)
            db.flush()
        team_id = row.id
    if role == "agent":
        if not agent_code:
            raise repo.Invalid("坐席账号须关联坐席工号")
        agent = db.scalar(select(Agent).where(Agent.code == agent_code.strip()))
        if agent is None:
            agent = Agent(code=agent_code.strip())
            db.add(agent)
            db.flush()
        agent_id = agent.id
    return team_id, agent_id


def create_user(db: Any, actor: User, body: UserIn, ip: str | None) -> tuple[User, str | None]:
    if body.role not in ROLES:
        raise repo.Invalid("未知角色")
    if db.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise repo.Conflict("用户名已存在")
    password = body.password
    generated = None
    if not password:
        password = generated = generate_password()
    problem = password_problem(password)
    if problem:
        raise repo.Invalid(problem)
    team_id, agent_id = resolve_links(db, body.role, body.team, body.agent_code)
    user = User(username=body.username, display_name=body.display_name, role=body.role,
                password_hash=hash_password(password), team_id=team_id, agent_id=agent_id)
    db.add(user)
    db.flush()
    repo.audit(db, actor, "user.create", "user", user.username, ip, role=body.role, team=body.team,
               agent=body.agent_code)
    return user, generated


def update_user(db: Any, actor: User, user: User, body: UserPatch, ip: str | None) -> str | None:
    changes: dict[str, Any] = {}
    role = body.role or user.role
    if user.id == actor.id and (body.role not in (None, "admin") or body.active is False):
        raise repo.Invalid("不能取消自己的管理员权限或停用自己")
    if body.role is not None or body.team is not None or body.agent_code is not None:
        team_id, agent_id = resolve_links(db, role, body.team if body.team is not None else (
            user.team.name if user.team else None), body.agent_code if body.agent_code is not None else (
            user.agent.code if user.agent else None))
        user.role, user.team_id, user.agent_id = role, team_id, agent_id
        changes.update(role=role, team=body.team, agent=body.agent_code)
    if body.display_name is not None:
        user.display_name = body.display_name
        changes["display_name"] = body.display_name
    if body.active is not None:
        user.active = body.active
        changes["active"] = body.active
        if not body.active:
            close_user_sessions(db, user.id)
    generated = None
    if body.reset_password:
        generated = generate_password()
        user.password_hash = hash_password(generated)
        user.failed_logins, user.locked_until = 0, None
        close_user_sessions(db, user.id)
        changes["password_reset"] = True
    if changes.get("role") is not None or changes.get("active") is False:
        close_user_sessions(db, user.id)  # a changed role takes effect at the next login
    repo.audit(db, actor, "user.update", "user", user.username, ip, **changes)
    return generated


@router.get("/users", tags=["admin"], summary="Users (admin)")
def users(p: Admin, db: DB) -> list[dict[str, Any]]:
    return [views.user_view(u) for u in repo.list_users(db)]


@router.post("/users", status_code=201, tags=["admin"], summary="Create a user (admin)")
def post_user(body: UserIn, p: Admin, db: DB, request: Request) -> dict[str, Any]:
    user, generated = create_user(db, p.user, body, client_ip(request))
    db.commit()
    out = views.user_view(user)
    if generated:
        out["password"] = generated
    return out


@router.patch("/users/{user_id}", tags=["admin"], summary="Change a user's role, links, state or password (admin)")
def patch_user(user_id: int, body: UserPatch, p: Admin, db: DB, request: Request) -> dict[str, Any]:
    user = db.get(User, user_id)
    if user is None:
        raise repo.NotFound("用户不存在")
    generated = update_user(db, p.user, user, body, client_ip(request))
    db.commit()
    out = views.user_view(user)
    if generated:
        out["password"] = generated
    return out


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

