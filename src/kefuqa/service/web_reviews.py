"""The review queue's bulk verdicts (issue 9, item 13): the page's form (checked findings, one verdict, one
reason) and the API's `POST /api/reviews/bulk`. After a verdict the queue comes back with its filter."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from .deps import APICtx, PageUser
from .security import same
from .usecases import reviews
from .web import queue_url, redirect

router = APIRouter()


class BulkIn(BaseModel):
    ids: list[int] = Field(min_length=1, max_length=200)
    verdict: Literal["confirm", "reject"]
    reason: str | None = Field(default=None, max_length=2000, description="required to reject")


@router.post("/api/reviews/bulk", tags=["review"],
             summary="The same verdict on several findings (admin, qa); per finding: saved or why not")
def api_bulk(body: BulkIn, ctx: APICtx) -> dict[str, Any]:
    got = reviews.review_many(ctx, body.ids, body.verdict, body.reason)
    return {"saved": [i for i, why in got.items() if why is None],
            "refused": [{"id": i, "reason": why} for i, why in got.items() if why is not None]}


@router.post("/reviews/bulk")
async def page_bulk(request: Request, p: PageUser) -> Response:
    form = await request.form()
    if not same(str(form.get("csrf_token") or ""), p.csrf):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
    ids = [int(str(v)) for v in form.getlist("ids") if str(v).isdigit()]
    back = queue_url(form.get("rule"), form.get("team"))
    if not ids:
        return redirect(back)
    from starlette.concurrency import run_in_threadpool

    from .deps import client_ip, workbench
    from .usecases import Ctx

    wb = workbench(request)

    def work() -> dict[int, str | None]:
        with wb.sessions() as db:
            return reviews.review_many(Ctx(wb, db, p.user, client_ip(request)), ids,
                                       str(form.get("verdict") or ""), str(form.get("reason") or ""))

    got = await run_in_threadpool(work)
    return redirect(back, "reviewed" if all(v is None for v in got.values()) else "reviewed_some")

