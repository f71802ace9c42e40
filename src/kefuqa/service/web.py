"""The web pages (Chinese), rendered on the server with Jinja2; forms carry a CSRF token.

A thin adapter: each form calls a use case (`service.usecases`); a domain error it raises becomes the
form again with the message, or the error page with its status (`app.py`, `deps.http_status`)."""

from __future__ import annotations

import secrets
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session as DBSession
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from . import audio_store, charts, views
from . import repository as repo
from . import rulebooks as store
from .deps import (
    DB,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Form,
    PageCtx,
    PageUser,
    Principal,
    client_ip,
    csv_download,
    form_data,
    http_status,
    page_roles,
    principal,
    workbench,
)
from .errors import Conflict, DomainError, Invalid, RulebookProblem, Unauthorized
from .models import ROLE_LABELS, ROLES, Conversation, Team, User
from .security import same
from .usecases import Ctx, auth, calls, reviews, rulebooks, uploads, users

WEB = Path(__file__).with_name("web")
templates = Jinja2Templates(directory=str(WEB / "templates"))
router = APIRouter(include_in_schema=False)


def _secs(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return ""
    v = int(value)
    return f"{v // 60}:{v % 60:02d}"


def _num(value: Any) -> str:
    if value is None:
        return "—"
    v = float(value)
    return f"{v:.0f}" if abs(v - round(v)) < 0.05 else f"{v:.1f}"


templates.env.filters["secs"] = _secs
templates.env.filters["num"] = _num
templates.env.filters["local"] = lambda dt, tz, fmt="%Y-%m-%d %H:%M": views.local(dt, tz, fmt)

Staff = Depends(page_roles("admin", "qa", "leader"))
ReviewerPage = Depends(page_roles("admin", "qa"))
AdminPage = Depends(page_roles("admin"))

NOTICES = {
    "reviewed": "复核结论已保存", "reviewed_some": "部分扣分项未保存：已被他人复核或申诉已裁决", "appealed": "申诉已提交，等待质检裁决", "decided": "申诉已裁决",
    "rescored": "已用当前规则集重新评分，历史评分已保留", "activated": "规则集已启用，新导入的会话将按此评分",
    "password": "密码已修改，请重新登录", "coached": "辅导已指派给坐席", "deleted": "会话已删除（原因已记入审计日志）", "user_saved": "用户已保存", "logged_out": "已退出登录",
}


def _nav(user: User, counts: dict[str, int]) -> list[dict[str, Any]]:
    r = user.role
    items: list[tuple[str, str, str, tuple[str, ...]]] = [
        ("/", "概览", "home", ("admin", "qa")),
        (f"/teams/{user.team_id}" if user.team_id else "/teams", "班组概览", "team", ("leader",)),
        (f"/agents/{user.agent.code}" if user.agent else "/calls", "我的表现", "me", ("agent",)),
        ("/calls", "我的会话" if r == "agent" else "会话列表", "calls", ROLES),
        ("/reviews", "复核队列", "reviews", ("admin", "qa")),
        ("/search", "全文搜索", "search", ROLES),  # issue 13
        ("/queue", "我的复核任务", "queue", ("admin", "qa")),  # issue 13
        ("/plans", "抽检计划", "plans", ("admin", "qa")),  # issue 13
        ("/calibration", "校准", "calibration", ("admin", "qa")),  # issue 13
        ("/trends", "趋势预警", "trends", ("admin", "qa", "leader")),  # issue 13
        ("/coaching", "我的辅导" if r == "agent" else "辅导", "coaching", ROLES),  # issue 13
        ("/training", "培训练习", "training", ROLES),  # issue 12
        ("/assist", "实时辅助", "assist", ROLES),  # issue 11
        ("/assist/wall", "实时监控墙", "wall", ("admin", "qa", "leader")),  # issue 11
        ("/appeals", "我的申诉" if r == "agent" else "申诉处理", "appeals", ROLES),
        ("/teams", "班组", "teams", ("admin", "qa")),
        ("/agents", "坐席", "agents", ("admin", "qa", "leader")),
        ("/upload", "导入会话", "upload", ("admin", "qa")),
        ("/rulebooks", "规则集", "rulebooks", ("admin", "qa")),
        ("/rules/quality", "规则准确率", "quality", ("admin",)),
        ("/admin/users", "用户管理", "users", ("admin",)),
        ("/admin/audit", "审计日志", "audit", ("admin",)),
    ]
    badge = {"reviews": counts.get("reviews", 0), "appeals": counts.get("appeals", 0)}
    return [{"href": h, "label": label, "key": k, "badge": badge.get(k, 0)} for h, label, k, roles in items
            if r in roles]


def render(request: Request, template: str, p: Principal | None, *, status: int = 200, active: str = "",
           **ctx: Any) -> HTMLResponse:
    wb = workbench(request)
    base: dict[str, Any] = {"request": request, "user": p.user if p else None, "csrf": p.csrf if p else "",
                            "active": active, "labels": views, "tz": wb.settings.timezone,
                            "notice": NOTICES.get(request.query_params.get("ok", "")),
                            "role_labels": ROLE_LABELS}
    if p is not None:
        with wb.sessions() as db:
            base["nav"] = _nav(p.user, repo.counts(db, p.user))
    base.update(ctx)
    return templates.TemplateResponse(request, template, base, status_code=status)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    with workbench(request).sessions() as db:
        p = principal(request, db)
        p = p if p is not None and p.via == "cookie" else None
    return render(request, "error.html", p, status=status, code=status, message=message)


PERIODS = [(7, "近7天"), (30, "近30天"), (90, "近90天"), (365, "近一年"), (0, "全部")]
# One default period for every statistics page (overview, teams, agents, an agent's page), highlighted in
# the page's period switch, so two pages never disagree about the same agent by default.
DEFAULT_DAYS = repo.DEFAULT_DAYS


def _days(request: Request, default: int = DEFAULT_DAYS) -> int:
    """The period of a statistics page (?days=), one of PERIODS; 0 means all time."""
    raw = request.query_params.get("days")
    allowed = {d for d, _ in PERIODS}
    return int(raw) if raw and raw.isdigit() and int(raw) in allowed else default


def _period(days: int) -> int:
    """Days to look back for a PERIODS value (0: all time)."""
    return days or 36500


def queue_url(rule: object, team: object) -> str:
    """The review queue with its filter (rule prefix, team), as the page that sent a verdict had it."""
    params = {k: str(v).strip()[:32] for k, v in (("rule", rule), ("team", team)) if v and str(v).strip()}
    return "/reviews" + (f"?{urlencode(params)}" if params else "")


def redirect(url: str, ok: str | None = None) -> RedirectResponse:
    """303 to `url`; `ok` names the notice the next page shows (the query goes before any #fragment)."""
    if ok:
        path, hash_, fragment = url.partition("#")
        url = path + ("&" if "?" in path else "?") + urlencode({"ok": ok}) + hash_ + fragment
    return RedirectResponse(url, status_code=303)


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _home(user: User) -> str:
    if user.role == "agent":
        return f"/agents/{user.agent.code}" if user.agent else "/calls"
    if user.role == "leader":
        return f"/teams/{user.team_id}" if user.team_id else "/calls"
    return "/"


# ---- login -----------------------------------------------------------------------------------------------------


def _login_page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    resp = render(request, "login.html", None, status=status, error=error, login_csrf=token,
                  next=_safe_next(request.query_params.get("next")))
    resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                    secure=workbench(request).settings.cookie_secure)
    return resp


@router.get("/login")
def login_form(request: Request, db: DB) -> Response:
    p = principal(request, db)
    if p is not None and p.via == "cookie":
        return redirect(_home(p.user))
    return _login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await form_data(request)
    if not same(str(form.get("csrf_token") or ""), request.cookies.get(LOGIN_CSRF_COOKIE)):
        return _login_page(request, "页面已过期，请重新登录", 400)
    wb = workbench(request)
    s = wb.settings

    def work() -> auth.LoggedIn:
        with wb.sessions() as db:
            return auth.login(Ctx(wb, db, None, client_ip(request)), str(form.get("username") or ""),
                              str(form.get("password") or ""), via="web")

    try:
        done = await run_in_threadpool(work)
    except Unauthorized as exc:
        return _login_page(request, str(exc), http_status(exc))  # 401, or 429 while failures are slowed
    target = _safe_next(str(form.get("next") or ""))
    if target == "/":
        target = _home(done.user)
    resp = redirect(target)
    resp.set_cookie(SESSION_COOKIE, done.session.token, httponly=True, samesite="lax", secure=s.cookie_secure,
                    path="/", max_age=s.session_hours * 3600)
    resp.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return resp


@router.post("/logout")
def logout(request: Request, ctx: PageCtx, form: Form) -> Response:
    auth.logout(ctx, request.cookies.get(SESSION_COOKIE), via="web")
    resp = redirect("/login", "logged_out")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


# ---- overview --------------------------------------------------------------------------------------------------


@router.get("/")
def overview(request: Request, p: PageUser, db: DB) -> Response:
    if p.user.role not in ("admin", "qa"):
        return redirect(_home(p.user))
    tz = workbench(request).settings.timezone
    days = _days(request)
    s, per_team, top = repo.overview_stats(db, p.user, tz, _period(days))  # issue 13: one query, cached 30 s
    teams: list[dict[str, Any]] = [{"team": t, "summary": per_team.get(t.id) or repo.Summary()}
                                   for t in repo.visible_teams(db, p.user)]
    teams.sort(key=lambda x: -(x["summary"].average or 0))
    counts = repo.counts(db, p.user)
    from .usecases.trends import alerts  # issue 13: rising rules and new complaint phrases

    return render(request, "overview.html", p, active="home", s=s, counts=counts, teams=teams, days=days,
                  alerts=alerts(Ctx(workbench(request), db, p.user)),
                  periods=PERIODS,
                  trend=charts.line_chart([(d.strftime("%m-%d"), v, n) for d, v, n in s.trend], title="平均分趋势"),
                  dist=charts.column_chart(s.distribution, title="得分分布", colors=charts.DISTRIBUTION_COLORS),
                  top=charts.bar_chart([(f"{t['rule']} {t['name'] or ''}", t["count"]) for t in top],
                                       title="最常违反的规则", unit=" 次", color="#f97316",
                                       links=[f"/calls?rule={t['rule']}" for t in top]))


# ---- calls -----------------------------------------------------------------------------------------------------


def _page_filter(request: Request) -> repo.CallFilter:
    """The call filter from the query string; bad values are ignored rather than refused (it is a form)."""
    q = request.query_params

    def num(key: str) -> float | None:
        try:
            return float(q[key]) if q.get(key) else None
        except ValueError:
            return None

    def day(key: str) -> date | None:
        try:
            return date.fromisoformat(q[key]) if q.get(key) else None
        except ValueError:
            return None

    def text(key: str, n: int) -> str | None:
        v = (q.get(key) or "").strip()
        return v[:n] or None

    try:
        page = max(1, min(100_000, int(q.get("page") or 1)))
    except ValueError:
        page = 1
    team = q.get("team")
    rule = text("rule", 32)
    sort = q.get("sort") or "-call_at"
    return repo.CallFilter(
        agent=text("agent", 100), team=int(team) if team and team.isdigit() else None, date_from=day("date_from"),
        date_to=day("date_to"), score_min=num("score_min"), score_max=num("score_max"),
        rule=rule if rule and rule.replace("_", "").replace("-", "").isalnum() else None, grade=text("grade", 32),
        channel=text("channel", 16), q=text("q", 100),
        fatal=True if q.get("fatal") == "1" else None,
        review=q.get("review") if q.get("review") in ("open", "done") else None,
        sort=sort if sort.lstrip("-") in repo.SORTS else "-call_at", page=page, page_size=50)


@router.get("/calls")
def calls_page(request: Request, p: PageUser, db: DB) -> Response:
    f = _page_filter(request)
    tz = workbench(request).settings.timezone
    rows, total = repo.list_calls(db, p.user, f, tz)
    counts = repo.finding_counts(db, rows)
    grades = [g for (g,) in db.execute(repo.scope_calls(select(Conversation.grade).distinct(), p.user)
                                       .where(Conversation.grade.is_not(None)))]
    params = f.params()
    pages = max(1, -(-total // f.page_size))

    def page_url(n: int) -> str:
        return "/calls?" + urlencode({**params, "page": str(n)})

    def sort_url(key: str) -> str:
        current = f.sort
        new = key if current == "-" + key else "-" + key
        return "/calls?" + urlencode({**{k: v for k, v in params.items() if k not in ("sort", "page")}, "sort": new})

    return render(request, "calls.html", p, active="calls", rows=rows, total=total, f=f, counts=counts,
                  teams=repo.visible_teams(db, p.user), agents=repo.visible_agents(db, p.user), grades=sorted(grades),
                  page=f.page, pages=pages, page_url=page_url, sort_url=sort_url,
                  export_url="/export.csv?" + urlencode({k: v for k, v in params.items() if k != "page"}))


@router.get("/export.csv")
def export(request: Request, ctx: PageCtx) -> Response:
    return csv_download(calls.export_csv(ctx, _page_filter(request)))


def highlight(text: str, marks: list[tuple[int, int, str, str]]) -> Markup:
    """`text` with <mark>s at (start, end, css class, title) spans; overlapping spans are merged."""
    marks = sorted((max(0, s), min(len(text), e), c, t) for s, e, c, t in marks if e > s and s < len(text))
    out: list[str] = []
    pos = 0
    i = 0
    while i < len(marks):
        s, e, cls, title = marks[i]
        titles = [title]
        j = i + 1
        while j < len(marks) and marks[j][0] < e:
            e = max(e, marks[j][1])
            titles.append(marks[j][3])
            if marks[j][2] == "sev-fatal" or (marks[j][2] == "sev-major" and cls != "sev-fatal"):
                cls = marks[j][2]
            j += 1
        if s < pos:
            s = pos
        out.append(str(escape(text[pos:s])))
        out.append(f'<mark class="{cls}" title="{escape("；".join(titles))}">{escape(text[s:e])}</mark>')
        pos = e
        i = j
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


def _span(f: Any, text: str) -> tuple[int, int] | None:
    if f.span_start is not None and f.span_end is not None:
        return f.span_start, f.span_end
    if f.evidence and f.evidence in text:
        at = text.index(f.evidence)
        return at, at + len(f.evidence)
    return None


def _timeline_html(conv: Conversation, score: Any, data: dict[str, Any], findings: list[Any]) -> Markup:
    """A recording: the audio layer's timeline with its player (`kefuqa.writers.timeline`). A transcript
    with times: our own SVG lanes, without a player."""
    kept = [f for f in findings if f.kind == "finding" and f.status not in ("rejected", "overturned")]
    if conv.has_audio:
        try:
            from ..model import Conversation as ConversationModel
            from ..model import Finding as CoreFinding
            from ..model import Report
            from ..writers.timeline import render_timeline
        except ImportError:
            pass
        else:
            report = Report(
                call_id=conv.call_id, rulebook={}, score=conv.score or 0.0, grade=conv.grade or "",
                fatal=conv.fatal, dimensions=dict(score.dimensions) if score else {}, events=[],
                findings=[CoreFinding(rule=f.rule, name=f.name or f.rule, severity=f.severity or "minor",
                                      points=f.points, utterance=f.utterance, start=f.start, end=f.end,
                                      evidence=f.evidence, message=f.message or "", suggestion=f.suggestion)
                          for f in kept],
                not_applicable={}, conversation=ConversationModel.model_validate(data))
            return Markup(render_timeline(report, audio_src=f"/calls/{conv.id}/audio", assets=False))
    utts = data.get("utterances") or []
    ends = [u.get("end") for u in utts if isinstance(u.get("end"), (int, float))]
    duration = float(conv.duration or (max(ends) if ends else 0) or 0)
    return charts.timeline(utts, [{"rule": f.rule, "name": f.name, "start": f.start} for f in kept],
                           data.get("events") or [], duration=duration)


@router.get("/assets/timeline.js")
def timeline_js() -> Response:
    from ..writers.timeline import TIMELINE_JS

    return Response(TIMELINE_JS, media_type="text/javascript; charset=utf-8",
                    headers={"cache-control": "public, max-age=3600"})


@router.get("/assets/timeline.css")
def timeline_css() -> Response:
    from ..writers.timeline import TIMELINE_CSS

    return Response(TIMELINE_CSS, media_type="text/css; charset=utf-8", headers={"cache-control": "public, max-age=3600"})


@router.get("/calls/{call_id}")
def call_page(call_id: int, request: Request, p: PageUser, db: DB) -> Response:
    conv = repo.get_call(db, p.user, call_id)
    score = repo.current_score(db, conv)
    findings = repo.call_findings(db, score.id) if score else []
    appeals = repo.appeals_for(db, [f.id for f in findings])
    names = repo.user_names(db, {f.reviewed_by for f in findings} | {a.decided_by for a in appeals.values()})
    data = conv.data
    utterances = data.get("utterances") or []
    per_utt: dict[int, list[Any]] = {}
    for f in findings:
        if f.utterance is not None:
            per_utt.setdefault(f.utterance, []).append(f)
    rendered = []
    for i, u in enumerate(utterances):
        text = str(u.get("text") or "")
        marks = []
        for f in per_utt.get(i, []):
            span = _span(f, text)
            if span is not None and not (f.kind == "finding" and f.status in ("rejected", "overturned")):
                cls = "sev-event" if f.kind == "event" else f"sev-{f.severity or 'minor'}"
                marks.append((span[0], span[1], cls, f"{f.rule} {f.name or ''}"))
        rendered.append({"i": i, "role": u.get("role"), "start": u.get("start"), "end": u.get("end"),
                         "html": highlight(text, marks), "findings": per_utt.get(i, [])})
    rec = score.rulebook if score else None
    dims = []
    if score:
        maxes = {d["name"]: d["max"] for d in (rec.scorecard.get("dimensions") if rec else []) or []}
        for name, value in (score.dimensions or {}).items():
            top = maxes.get(name) or 0
            dims.append({"name": name, "value": value, "max": top, "pct": (value / top * 100) if top else 0})
    history = repo.score_history(db, conv)
    report = (score.report or {}) if score else {}
    active = {f.rule: f.name for f in findings if f.kind == "finding" and f.status not in ("rejected", "overturned")}
    # the 红线 rules that zero the score now (a voided finding no longer does), named beside the score
    fatal_named = [f"{r} {active[r]}" for r in report.get("fatal_rules") or [] if r in active]
    return render(
        request, "call.html", p, active="calls", conv=conv, score=score, data=data, utterances=rendered,
        fatal_named=fatal_named, coverage=report.get("coverage"),
        charged_rules={f.rule for f in findings if f.kind == "finding" and f.points},
        findings=[f for f in findings if f.kind == "finding"], events=[f for f in findings if f.kind == "event"],
        appeals=appeals, names=names, dims=dims, history=history,
        not_applicable=(score.report.get("not_applicable_reasons") or {}) if score else {},
        can_review=repo.can_review(p.user), can_appeal=p.user.role == "agent" and conv.agent_id == p.user.agent_id,
        timeline=_timeline_html(conv, score, data, findings) if conv.has_audio
        or any(isinstance(u.get("start"), (int, float)) for u in utterances) else None,
    )


@router.get("/calls/{call_id}/audio")
def call_audio(call_id: int, ctx: PageCtx) -> Response:
    path = calls.recording(ctx, call_id)
    return FileResponse(path, media_type=audio_store.media_type(path))


@router.post("/calls/{call_id}/rescore")
def rescore(call_id: int, ctx: PageCtx, form: Form) -> Response:
    score = calls.rescore(ctx, call_id)
    return redirect(f"/calls/{score.conversation_id}", "rescored")


@router.post("/findings/{finding_id}/review")
def review(finding_id: int, ctx: PageCtx, form: Form) -> Response:
    f = reviews.review_finding(ctx, finding_id, str(form.get("verdict") or ""), str(form.get("reason") or ""))
    if str(form.get("back") or "") == "queue":  # back to the queue as it was filtered (issue 9)
        return redirect(queue_url(form.get("rule"), form.get("team")), "reviewed")
    return redirect(f"/calls/{f.conversation_id}#f{f.id}", "reviewed")


@router.post("/findings/{finding_id}/appeal")
def appeal(finding_id: int, ctx: PageCtx, form: Form) -> Response:
    a = reviews.appeal_finding(ctx, finding_id, str(form.get("reason") or ""))
    return redirect(f"/calls/{a.conversation_id}#f{finding_id}", "appealed")


# ---- review and appeals ----------------------------------------------------------------------------------------


@router.get("/reviews", dependencies=[ReviewerPage])
def reviews_page(request: Request, p: PageUser, db: DB) -> Response:
    rule = (request.query_params.get("rule") or "").strip()[:32] or None
    team = request.query_params.get("team")
    rows, total = repo.review_queue(db, p.user, rule, int(team) if team and team.isdigit() else None, 100)
    context = views.transcript_context(db, rows)
    return render(request, "reviews.html", p, active="reviews", rows=rows, total=total, rule=rule or "",
                  context=context,
                  team=int(team) if team and team.isdigit() else None, teams=repo.visible_teams(db, p.user))


@router.get("/appeals")
def appeals(request: Request, p: PageUser, db: DB) -> Response:
    rows = repo.list_appeals(db, p.user)
    convs = {c.id: c for c in db.scalars(select(Conversation).where(
        Conversation.id.in_({a.conversation_id for a in rows})))} if rows else {}
    names = repo.user_names(db, {a.decided_by for a in rows} | {a.user_id for a in rows})
    return render(request, "appeals.html", p, active="appeals", rows=rows, convs=convs, names=names,
                  can_decide=repo.can_review(p.user))


@router.post("/appeals/{appeal_id}/decide")
def decide(appeal_id: int, ctx: PageCtx, form: Form) -> Response:
    reviews.decide_appeal(ctx, appeal_id, str(form.get("decision") or ""), str(form.get("reason") or ""))
    return redirect("/appeals", "decided")


# ---- agents and teams ------------------------------------------------------------------------------------------


@router.get("/agents", dependencies=[Staff])
def agents(request: Request, p: PageUser, db: DB) -> Response:
    days = _days(request)
    ranking = repo.agent_ranking(db, p.user, days=_period(days))
    seen = {r["code"] for r in ranking}
    idle = [a for a in repo.visible_agents(db, p.user) if a.code not in seen]
    return render(request, "agents.html", p, active="agents", ranking=ranking, idle=idle, days=days,
                  periods=PERIODS)


@router.get("/agents/{code}")
def agent_page(code: str, request: Request, p: PageUser, db: DB) -> Response:
    agent = repo.get_agent(db, p.user, code[:100])
    tz = workbench(request).settings.timezone
    days = _days(request)
    s = repo.summary(db, p.user, tz, agent_id=agent.id, days=_period(days))
    top = repo.top_rules(db, p.user, agent_id=agent.id, since=repo.utcnow() - timedelta(days=_period(days)), limit=8)
    practice = repo.practice(db, p.user, agent.id, [t["rule"] for t in top[:5]])
    since = repo.local_day(repo.utcnow(), tz) - timedelta(days=days - 1) if days else None
    recent, _ = repo.list_calls(db, p.user, repo.CallFilter(agent=agent.code, date_from=since, page_size=10), tz)
    rules_meta = {}
    with workbench(request).sessions() as db2:
        rec = store.active(db2)
        if rec is not None:
            rules_meta = {r["id"]: r for r in rec.rules or []}
    from .usecases.coaching import items as coaching_items  # issue 13: open coaching items

    coaching = coaching_items(Ctx(workbench(request), db, p.user), agent_id=agent.id, status="open", limit=20)
    return render(request, "agent.html", p, active="me" if p.user.agent_id == agent.id else "agents", agent=agent,
                  coaching=coaching,
                  s=s, top=top, practice=practice, recent=recent, rules_meta=rules_meta, days=days, periods=PERIODS,
                  period_label=dict(PERIODS)[days] if days else "全部时间内",
                  trend=charts.line_chart([(d.strftime("%m-%d"), v, n) for d, v, n in s.trend], title="得分趋势"),
                  top_chart=charts.bar_chart([(f"{t['rule']} {t['name'] or ''}", t["count"]) for t in top],
                                             title="最常违反的规则", unit=" 次", color="#f97316"))


@router.get("/teams", dependencies=[Staff])
def teams(request: Request, p: PageUser, db: DB) -> Response:
    tz = workbench(request).settings.timezone
    days = _days(request)
    per_team = repo.team_summaries(db, p.user, tz, days=_period(days))[1]  # issue 13: one GROUP BY query
    rows: list[dict[str, Any]] = [{"team": t, "s": per_team.get(t.id) or repo.Summary()}
                                  for t in repo.visible_teams(db, p.user)]
    if p.user.role == "leader" and len(rows) == 1:
        return redirect(f"/teams/{rows[0]['team'].id}")
    return render(request, "teams.html", p, active="teams", rows=rows, days=days, periods=PERIODS,
                  chart=charts.bar_chart([(r["team"].name, r["s"].average or 0) for r in rows if r["s"].calls],
                                         title="各班组平均分", unit=" 分",
                                         links=[f"/teams/{r['team'].id}" for r in rows if r["s"].calls]))


@router.get("/teams/{team_id}", dependencies=[Staff])
def team_page(team_id: int, request: Request, p: PageUser, db: DB) -> Response:
    team = repo.get_team(db, p.user, team_id)
    tz = workbench(request).settings.timezone
    days = _days(request)
    s = repo.summary(db, p.user, tz, team_id=team.id, days=_period(days))
    top = repo.top_rules(db, p.user, team_id=team.id, since=repo.utcnow() - timedelta(days=_period(days)), limit=8)
    ranking = repo.agent_ranking(db, p.user, team.id, _period(days))
    return render(request, "team.html", p, active="team" if p.user.role == "leader" else "teams", team=team, s=s,
                  ranking=ranking, days=days, periods=PERIODS,
                  trend=charts.line_chart([(d.strftime("%m-%d"), v, n) for d, v, n in s.trend], title="班组得分趋势"),
                  dist=charts.column_chart(s.distribution, title="得分分布", colors=charts.DISTRIBUTION_COLORS),
                  top=charts.bar_chart([(f"{t['rule']} {t['name'] or ''}", t["count"]) for t in top],
                                       title="最常违反的规则", unit=" 次", color="#f97316",
                                       links=[f"/calls?team={team.id}&rule={t['rule']}" for t in top]),
                  rank_chart=charts.bar_chart([(f"{r['name'] or r['code']}", r["average"]) for r in ranking[:15]],
                                              title="坐席平均分", unit=" 分",
                                              links=[f"/agents/{r['code']}" for r in ranking[:15]]))


# ---- upload ----------------------------------------------------------------------------------------------------


@router.get("/upload", dependencies=[ReviewerPage])
def upload_form(request: Request, p: PageUser, db: DB) -> Response:
    rb = workbench(request).rulebooks.active(db)
    db.commit()
    return render(request, "upload.html", p, active="upload", result=None, rulebook=rb)


@router.post("/upload", dependencies=[ReviewerPage])
async def upload(request: Request, p: PageUser) -> Response:
    wb = workbench(request)
    form = await request.form(max_files=wb.settings.max_files + 1, max_fields=50)
    if not same(str(form.get("csrf_token") or ""), p.csrf):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
    files: list[tuple[str, bytes]] = []
    for f in form.getlist("files"):
        if isinstance(f, UploadFile) and f.filename:
            files.append((f.filename, await f.read()))
    replace = form.get("replace") == "1"

    def work() -> dict[str, Any]:
        with wb.sessions() as db:
            return uploads.upload_files(Ctx(wb, db, p.user, client_ip(request)), files, replace=replace)

    result: dict[str, Any] | None = None
    error = None
    try:
        result = await run_in_threadpool(work)
    except DomainError as exc:
        error = str(exc)
    with wb.sessions() as db:
        rb = wb.rulebooks.active(db)
        db.commit()
    return render(request, "upload.html", p, active="upload", result=result, error=error, rulebook=rb,
                  status=200 if error is None else 400)


# ---- rulebooks -------------------------------------------------------------------------------------------------


@router.get("/rulebooks", dependencies=[ReviewerPage])
def rulebooks_page(request: Request, p: PageUser, db: DB) -> Response:
    return render(request, "rulebooks.html", p, active="rulebooks", rows=repo.list_rulebooks(db),
                  usage=repo.rulebook_usage(db), errors=None, names=repo.user_names(
                      db, {r.uploaded_by for r in repo.list_rulebooks(db)}))


@router.post("/rulebooks", dependencies=[AdminPage])
async def rulebook_upload(request: Request, p: PageUser) -> Response:
    form = await request.form(max_files=2, max_fields=10)
    if not same(str(form.get("csrf_token") or ""), p.csrf):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "请选择规则集 YAML 文件")
    filename = upload.filename or "rulebook.yaml"
    data = await upload.read(store.MAX_RULEBOOK_BYTES + 1)
    wb = workbench(request)

    def work() -> int:
        with wb.sessions() as db:
            return rulebooks.upload_rulebook(Ctx(wb, db, p.user, client_ip(request)), filename, data).id

    try:
        rec_id = await run_in_threadpool(work)
    except RulebookProblem as exc:
        errors = exc.errors
    else:
        return redirect(f"/rulebooks/{rec_id}")
    with wb.sessions() as db:
        rows = repo.list_rulebooks(db)
        return render(request, "rulebooks.html", p, active="rulebooks", rows=rows, usage=repo.rulebook_usage(db),
                      errors=errors, names=repo.user_names(db, {r.uploaded_by for r in rows}), status=422)


@router.get("/rulebooks/{rulebook_id}", dependencies=[ReviewerPage])
def rulebook_page(rulebook_id: int, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    rec = rulebooks.get_rulebook(ctx, rulebook_id)
    return render(request, "rulebook.html", p, active="rulebooks", rb=rec,
                  usage=repo.rulebook_usage(ctx.db).get(rec.id, 0))


@router.post("/rulebooks/{rulebook_id}/activate", dependencies=[AdminPage])
def rulebook_activate(rulebook_id: int, ctx: PageCtx, form: Form) -> Response:
    rec = rulebooks.activate_rulebook(ctx, rulebook_id)
    return redirect(f"/rulebooks/{rec.id}", "activated")


@router.get("/rules/quality", dependencies=[AdminPage])
def quality(request: Request, p: PageUser, db: DB) -> Response:
    from .usecases.learning import precision_by_model  # issue 8: precision per judgement-model version
    from .usecases.missed import with_recall  # issue 13: recall from missed findings

    rows = with_recall(db, repo.rule_quality(db, p.user))
    judged = [r for r in rows if r["reviewed"]]
    return render(request, "quality.html", p, active="quality", rows=rows, bar=charts.precision_bar,
                  by_model=precision_by_model(db),
                  chart=charts.bar_chart([(f"{r['rule']} {r['name'] or ''}", round(r["precision"] * 100))
                                          for r in judged[:12]], title="准确率最低的规则", unit="%", top=100,
                                         colors=[charts.precision_color(r["precision"]) for r in judged[:12]]))


# ---- users, audit, account -------------------------------------------------------------------------------------


@router.get("/admin/users", dependencies=[AdminPage])
def users_page(request: Request, p: PageUser, db: DB) -> Response:
    return render(request, "users.html", p, active="users", rows=repo.list_users(db), created=None, error=None,
                  teams=list(db.scalars(select(Team).order_by(Team.name))), roles=ROLES)


def _users_page(request: Request, p: Principal, db: DBSession, created: dict[str, Any] | None,
                error: str | None) -> HTMLResponse:
    return render(request, "users.html", p, active="users", rows=repo.list_users(db), created=created, error=error,
                  teams=list(db.scalars(select(Team).order_by(Team.name))), roles=ROLES,
                  status=200 if error is None else 422)


def _text(form: dict[str, Any], key: str) -> str | None:
    return str(form.get(key) or "").strip() or None


@router.post("/admin/users", dependencies=[AdminPage])
def users_create(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    new = users.NewUser(username=str(form.get("username") or "").strip(), role=str(form.get("role") or ""),
                        display_name=_text(form, "display_name"), password=str(form.get("password") or "") or None,
                        team=_text(form, "team"), agent_code=_text(form, "agent_code"))
    try:
        saved = users.create_user(ctx, new)
    except (Invalid, Conflict) as exc:
        return _users_page(request, p, ctx.db, None, str(exc))
    return _users_page(request, p, ctx.db,
                       {"username": saved.user.username, "password": saved.password}, None)


@router.post("/admin/users/{user_id}", dependencies=[AdminPage])
def users_update(user_id: int, request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    role = str(form.get("role") or "") or None
    changes = users.UserChanges(role=role if role in ROLES else None, team=_text(form, "team"),
                                agent_code=_text(form, "agent_code"),
                                active=form.get("active") == "1" if "active_present" in form else None,
                                reset_password=form.get("reset_password") == "1")
    try:
        saved = users.update_user(ctx, user_id, changes)
    except (Invalid, Conflict) as exc:
        return _users_page(request, p, ctx.db, None, str(exc))
    if saved.password is None:
        return redirect("/admin/users", "user_saved")
    return _users_page(request, p, ctx.db,
                       {"username": saved.user.username, "password": saved.password}, None)


@router.get("/admin/audit", dependencies=[AdminPage])
def audit(request: Request, p: PageUser, db: DB) -> Response:
    action = (request.query_params.get("action") or "").strip()[:40] or None
    return render(request, "audit.html", p, active="audit", rows=repo.list_audit(db, 300, action), action=action or "")


@router.get("/account")
def account(request: Request, p: PageUser) -> Response:
    return render(request, "account.html", p, error=None)


@router.post("/account/password")
def account_password(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    try:
        auth.change_password(ctx, str(form.get("old_password") or ""), str(form.get("new_password") or ""),
                             str(form.get("confirm_password") or ""))
    except DomainError as exc:
        return render(request, "account.html", p, error=str(exc), status=422)
    resp = redirect("/login", "password")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
