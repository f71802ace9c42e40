"""Pages and API of calibration sessions (admin and qa only; results after the session is closed)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from .deps import APICtx, Form, PageCtx, PageUser, api_roles, page_roles
from .errors import Invalid
from .usecases import calibration
from .usecases.missed import rule_choices
from .web import redirect, render
from .web_plans import _inspectors

pages = APIRouter(include_in_schema=False, dependencies=[Depends(page_roles("admin", "qa"))])
api_router = APIRouter(prefix="/api", tags=["校准"], dependencies=[Depends(api_roles("admin", "qa"))])

NOTICES = {"created": "校准已发起，请通知质检员评分", "scored": "评分已保存", "closed": "校准已结束，结果已公开",
           "adopted": "已采用共识为该会话的复核结论"}


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{v * 100:.0f}%"


def _kappa(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def _kclass(v: float | None) -> str:
    return "" if v is None else "kappa-good" if v >= 0.6 else "kappa-mid" if v >= 0.4 else "kappa-bad"


FMT = {"pct": _pct, "kappa": _kappa, "kclass": _kclass}


@pages.get("/calibration")
def sessions_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    return render(request, "calibrations.html", p, active="calibration", rows=calibration.list_sessions(ctx),
                  inspectors=_inspectors(ctx), error=None, form={},
                  notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.post("/calibration")
def create_session(request: Request, p: PageUser, ctx: PageCtx, form: Form) -> Response:
    ids = sorted(int(k.split("_", 1)[1]) for k, v in form.items()
                 if k.startswith("inspector_") and k.split("_", 1)[1].isdigit() and v == "1")
    try:
        rec = calibration.create(ctx, str(form.get("name") or ""), str(form.get("calls") or ""), ids)
    except Invalid as exc:
        return render(request, "calibrations.html", p, status=422, active="calibration",
                      rows=calibration.list_sessions(ctx), inspectors=_inspectors(ctx), error=str(exc), form=form)
    return redirect(f"/calibration/{rec.id}", "created")


@pages.get("/calibration/{session_id}")
def session_page(session_id: int, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    rec = calibration.get(ctx, session_id)
    res = calibration.results(ctx, session_id) if rec.status != "open" else None
    from sqlalchemy import select

    from .models import Conversation

    calls = {c.id: c for c in ctx.db.scalars(select(Conversation).where(Conversation.id.in_(rec.call_ids)))}
    return render(request, "calibration.html", p, active="calibration", rec=rec, res=res, calls=calls,
                  progress=calibration.progress(ctx, rec), mine=calibration.my_verdicts(ctx, rec),
                  member=p.user.id in rec.inspector_ids, can_close=p.user.role == "admin" or rec.created_by == p.user.id,
                  fmt=FMT, notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.get("/calibration/{session_id}/calls/{call_id}")
def score_page(session_id: int, call_id: int, request: Request, p: PageUser, ctx: PageCtx) -> Response:
    rec, conv = calibration.scoring_call(ctx, session_id, call_id)
    mine = calibration.my_verdicts(ctx, rec).get(conv.id)
    order = list(rec.call_ids)
    nxt = next((c for c in order[order.index(conv.id) + 1:]), None)
    return render(request, "calibration_score.html", p, active="calibration", rec=rec, conv=conv,
                  utterances=list(enumerate(conv.data.get("utterances") or [])), rules=rule_choices(ctx),
                  chosen=set(mine.rules) if mine else set(), comment=(mine.comment if mine else "") or "", nxt=nxt,
                  position=order.index(conv.id) + 1, notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.post("/calibration/{session_id}/calls/{call_id}")
def score(session_id: int, call_id: int, ctx: PageCtx, form: Form) -> Response:
    rules = [k.split("_", 1)[1] for k, v in form.items() if k.startswith("rule_") and v == "1"]
    calibration.submit(ctx, session_id, call_id, rules, str(form.get("comment") or ""))
    nxt = str(form.get("next") or "")
    return redirect(f"/calibration/{session_id}/calls/{nxt}" if nxt.isdigit() else f"/calibration/{session_id}",
                    "scored")


@pages.post("/calibration/{session_id}/close")
def close(session_id: int, ctx: PageCtx, form: Form) -> Response:
    calibration.close(ctx, session_id)
    return redirect(f"/calibration/{session_id}", "closed")


@pages.post("/calibration/{session_id}/calls/{call_id}/adopt")
def adopt(session_id: int, call_id: int, ctx: PageCtx, form: Form) -> Response:
    calibration.adopt_consensus(ctx, session_id, call_id)
    return redirect(f"/calibration/{session_id}#spread", "adopted")


# ---- API -----------------------------------------------------------------------------------------------------


class SessionIn(BaseModel):
    name: str
    calls: list[str]
    inspectors: list[int]


class VerdictIn(BaseModel):
    rules: list[str] = []
    comment: str | None = None


@api_router.post("/calibration", status_code=201)
def api_create(body: SessionIn, ctx: APICtx) -> dict[str, Any]:
    rec = calibration.create(ctx, body.name, body.calls, body.inspectors)
    return {"id": rec.id, "calls": rec.call_ids, "inspectors": rec.inspector_ids, "status": rec.status}


@api_router.put("/calibration/{session_id}/calls/{call_id}")
def api_score(session_id: int, call_id: int, body: VerdictIn, ctx: APICtx) -> dict[str, Any]:
    v = calibration.submit(ctx, session_id, call_id, body.rules, body.comment)
    return {"call": v.conversation_id, "rules": v.rules}


@api_router.post("/calibration/{session_id}/close")
def api_close(session_id: int, ctx: APICtx) -> dict[str, Any]:
    return {"id": calibration.close(ctx, session_id).id, "status": "closed"}


@api_router.get("/calibration/{session_id}")
def api_session(session_id: int, ctx: APICtx) -> dict[str, Any]:
    """Progress while open (counts only: blind); the agreement once closed."""
    rec = calibration.get(ctx, session_id)
    out: dict[str, Any] = {"id": rec.id, "name": rec.name, "status": rec.status, "calls": rec.call_ids,
                           "progress": [{"inspector": x.inspector, "done": x.done, "total": x.total}
                                        for x in calibration.progress(ctx, rec)]}
    if rec.status != "open":
        res = calibration.results(ctx, session_id)
        r = res.report
        out["deleted_calls"] = res.deleted  # issue 13: deleted since the session was set up, not compared
        out["agreement"] = {
            "calls": r.calls, "items": r.items, "percent": r.percent, "fleiss_kappa": r.fleiss,
            "cohen_kappa": [{"a": a, "b": b, "kappa": k, "percent": r.pair_percent[(a, b)]} for (a, b), k in r.pairs.items()],
            "rules": [{"rule": x.rule, "percent": x.percent, "fleiss_kappa": x.fleiss, "machine_percent": x.machine}
                      for x in r.rules],
            "inspectors": [{"inspector": x.rater, "percent_with_consensus": x.with_consensus,
                            "kappa_with_consensus": x.kappa_consensus} for x in r.per_rater],
            "machine": {"percent": r.machine_percent, "kappa": r.machine_kappa},
            "spread": [{"call": s.call, "spread": s.spread, "votes": s.votes, "consensus": s.consensus,
                        "machine": s.machine} for s in r.spread],
        }
    return out


@api_router.post("/calibration/{session_id}/calls/{call_id}/adopt")
def api_adopt(session_id: int, call_id: int, ctx: APICtx) -> dict[str, Any]:
    return calibration.adopt_consensus(ctx, session_id, call_id)


router = APIRouter()
router.include_router(pages)
router.include_router(api_router)
