"""Coaching pages and API: leaders note what to coach on a call or finding; agents acknowledge or dispute."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from . import repository as repo
from .deps import APICtx, Form, PageCtx, PageUser, page_roles
from .errors import Invalid
from .usecases import coaching
from .web import redirect, render

pages = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["辅导"])
Coach = Depends(page_roles(*coaching.COACHES))

NOTICES = {"created": "辅导已指派给坐席", "acknowledged": "已确认这条辅导", "disputed": "已提交申诉，等待质检裁决"}


def _int(v: Any) -> int | None:
    s = str(v or "").strip()
    return int(s) if s.isdigit() else None


@pages.get("/coaching")
def coaching_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    status = request.query_params.get("status")
    rows = coaching.items(ctx, status=status if status in coaching.STATUS_LABELS else None)
    return render(request, "coaching.html", p, active="coaching", rows=rows, filter_status=status,
                  labels_status=coaching.STATUS_LABELS, notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.get("/coaching/new", dependencies=[Coach])
def new_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    call = _int(request.query_params.get("call"))
    if call is None:
        raise Invalid("请从会话页面发起辅导")
    conv = repo.get_call(ctx.db, p.user, call)
    score = repo.current_score(ctx.db, conv)
    findings = [f for f in (repo.call_findings(ctx.db, score.id) if score else []) if f.kind == "finding"]
    return render(request, "coaching_new.html", p, active="coaching", conv=conv, findings=findings,
                  selected=_int(request.query_params.get("finding")), error=None, note="")


@pages.post("/coaching", dependencies=[Coach])
def create(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    call = _int(form.get("call"))
    if call is None:
        raise Invalid("缺少会话")
    coaching.create(ctx, call, str(form.get("note") or ""), _int(form.get("finding")))
    return redirect(f"/calls/{call}", "coached") if form.get("back") == "call" else redirect("/coaching", "created")


@pages.post("/coaching/{item_id}/acknowledge")
def acknowledge(item_id: int, ctx: PageCtx, form: Form) -> Response:
    coaching.acknowledge(ctx, item_id)
    return redirect("/coaching", "acknowledged")


@pages.post("/coaching/{item_id}/dispute")
def dispute(item_id: int, ctx: PageCtx, form: Form) -> Response:
    coaching.dispute(ctx, item_id, str(form.get("reason") or ""))
    return redirect("/coaching", "disputed")


class CoachingIn(BaseModel):
    call: int
    note: str
    finding: int | None = None


class DisputeIn(BaseModel):
    reason: str


def _json(i: coaching.Item) -> dict[str, Any]:
    e = i.effect
    return {"id": i.item.id, "call": i.call.id, "call_id": i.call.call_id, "finding": i.item.finding_id,
            "rule": i.item.rule, "note": i.item.note, "status": i.item.status,
            "created_at": i.item.created_at.isoformat(),
            "effect": None if e is None else {"before": e.before, "after": e.after, "calls_before": e.calls_before,
                                              "calls_after": e.calls_after, "went_down": e.went_down}}


@api_router.post("/coaching", status_code=201)
def api_create(body: CoachingIn, ctx: APICtx) -> dict[str, Any]:
    item = coaching.create(ctx, body.call, body.note, body.finding)
    return {"id": item.id, "status": item.status, "agent": item.agent_id, "rule": item.rule}


@api_router.get("/coaching")
def api_items(ctx: APICtx, status: str | None = None) -> list[dict[str, Any]]:
    """Coaching items in scope: an agent's own, a leader's team's, everything for QA."""
    return [_json(i) for i in coaching.items(ctx, status=status)]


@api_router.post("/coaching/{item_id}/acknowledge")
def api_ack(item_id: int, ctx: APICtx) -> dict[str, Any]:
    return {"id": item_id, "status": coaching.acknowledge(ctx, item_id).status}


@api_router.post("/coaching/{item_id}/dispute")
def api_dispute(item_id: int, body: DisputeIn, ctx: APICtx) -> dict[str, Any]:
    return {"id": item_id, "status": coaching.dispute(ctx, item_id, body.reason).status}


router = APIRouter()
router.include_router(pages)
router.include_router(api_router)
