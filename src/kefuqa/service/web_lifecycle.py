"""Data lifecycle pages and API: delete a call with a reason, export everything about one agent (admin)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from .deps import APICtx, Form, PageCtx, page_roles
from .usecases import lifecycle
from .web import redirect

pages = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["数据生命周期"])


class DeleteIn(BaseModel):
    reason: str


@pages.post("/calls/{call_id}/delete")
def delete_call(call_id: int, ctx: PageCtx, form: Form) -> Response:
    lifecycle.delete_call(ctx, call_id, str(form.get("reason") or ""))
    return redirect("/calls", "deleted")


def _download(data: dict[str, Any], code: str) -> Response:
    return Response(json.dumps(data, ensure_ascii=False, indent=1), media_type="application/json; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="kefuqa-agent-{code}.json"'})


@pages.get("/agents/{code}/export.json", dependencies=[Depends(page_roles("admin"))])
def export_agent(code: str, ctx: PageCtx) -> Response:
    data = lifecycle.export_agent(ctx, code)
    return _download(data, data["agent"]["code"])


@api_router.post("/calls/{call_id}/delete")
def api_delete_call(call_id: int, body: DeleteIn, ctx: APICtx) -> dict[str, Any]:
    """Delete a call, its scores, findings, appeals and recording (administrators; the reason is audited)."""
    return lifecycle.delete_call(ctx, call_id, body.reason)


@api_router.get("/agents/{code}/export")
def api_export_agent(code: str, ctx: APICtx) -> dict[str, Any]:
    """Everything stored about one agent (administrators; audited)."""
    return lifecycle.export_agent(ctx, code)


router = APIRouter()
router.include_router(pages)
router.include_router(api_router)
