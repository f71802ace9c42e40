"""Trend pages: violations per 100 calls per rule and team by week, alerts, the weekly summary (CSV and a
printable page). Staff only; a leader sees their team."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from .deps import APICtx, PageCtx, PageUser, api_roles, page_roles
from .usecases import trends
from .web import render

pages = APIRouter(include_in_schema=False, dependencies=[Depends(page_roles("admin", "qa", "leader"))])
api_router = APIRouter(prefix="/api", tags=["趋势"], dependencies=[Depends(api_roles("admin", "qa", "leader"))])


def _weeks(request: Request, default: int = 8) -> int:
    raw = request.query_params.get("weeks") or ""
    return max(2, min(52, int(raw))) if raw.isdigit() else default


def _until(request: Request) -> date | None:
    try:
        return date.fromisoformat(request.query_params.get("week") or "")
    except ValueError:
        return None


def _team(ctx: PageCtx | APICtx, request: Request) -> int | None:
    user = ctx.acting()
    if user.role == "leader":
        return user.team_id
    raw = request.query_params.get("team") or ""
    return int(raw) if raw.isdigit() else None


def _fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


@pages.get("/trends")
def trends_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    t = trends.cached(ctx, _weeks(request), team_id=_team(ctx, request), until=_until(request))
    return render(request, "trends.html", p, active="trends", t=t, fmt=_fmt, weeks=len(t.weeks),
                  query=request.url.query)


@pages.get("/trends/weekly")
def weekly_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    """The last complete week against the one before, to print for the QA meeting."""
    until = _until(request) or (trends.week_start(date.today()) - timedelta(days=7))
    t = trends.cached(ctx, 2, team_id=_team(ctx, request), until=until)
    return render(request, "trends_weekly.html", p, active="trends", t=t, fmt=_fmt)


@pages.get("/trends.csv")
def trends_csv(request: Request, ctx: PageCtx) -> Response:
    t = trends.cached(ctx, _weeks(request), team_id=_team(ctx, request), until=_until(request))
    return Response(trends.weekly_csv(t), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="kefuqa-trends-{t.weeks[-1]}.csv"'})


@api_router.get("/trends")
def api_trends(request: Request, ctx: APICtx) -> dict[str, Any]:
    """Violations per 100 calls per rule and team by week (`weeks`, `week` = any day of the last week, `team`)."""
    t = trends.cached(ctx, _weeks(request), team_id=_team(ctx, request), until=_until(request))

    def series(s: trends.Series) -> dict[str, Any]:
        return {"key": s.key, "name": s.name, "counts": s.counts, "rates": s.rates, "change": s.change,
                "rising": s.rising}

    return {"weeks": [d.isoformat() for d in t.weeks], "calls": t.calls, "rules": [series(s) for s in t.rules],
            "teams": [series(s) for s in t.teams], "complaint_calls": list(t.complaint_calls),
            "new_phrases": [{"text": p.text, "calls": p.calls, "share": round(p.share, 3),
                             "before": round(p.before, 3)} for p in t.phrases]}


router = APIRouter()
router.include_router(pages)
router.include_router(api_router)
