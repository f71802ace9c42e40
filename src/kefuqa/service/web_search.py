"""Search pages and API: full-text search of transcripts with the call list's filters, saved searches."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from . import repository as repo
from .deps import APICtx, Form, PageCtx, PageUser
from .errors import Invalid
from .usecases import search
from .web import _page_filter, redirect, render

pages = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["搜索"])

NOTICES = {"saved_search": "搜索已保存", "deleted_search": "已删除保存的搜索"}


def _filter(request: Request) -> repo.CallFilter:
    f = _page_filter(request)
    f.q = None  # the call-id filter of the call list; here `q` is the text searched
    f.page_size = 20
    return f


@pages.get("/search")
def search_page(request: Request, p: PageUser, ctx: PageCtx) -> Response:
    text = (request.query_params.get("q") or "").strip()[:300]
    f = _filter(request)
    error, hits = None, None
    if text or f.params():
        try:
            hits = search.search(ctx, text, f)
        except Invalid as exc:
            error = str(exc)
    params = {k: v for k, v in f.params().items() if k not in ("page", "page_size")}
    if text:
        params["q"] = text
    query = urlencode(params)
    pages = max(1, -(-hits.total // f.page_size)) if hits else 1  # with more than COUNT_CAP: the first pages

    def page_url(n: int) -> str:
        return "/search?" + urlencode({**params, "page": str(n)})

    return render(request, "search.html", p, active="search", text=text, f=f, hits=hits, error=error,
                  query=query, saved=search.saved(ctx), teams=repo.visible_teams(ctx.db, p.user),
                  agents=repo.visible_agents(ctx.db, p.user), page=f.page, pages=pages, page_url=page_url,
                  notice=NOTICES.get(request.query_params.get("ok", "")))


@pages.post("/search/saved")
def save_search(ctx: PageCtx, form: Form) -> Response:
    rec = search.save(ctx, str(form.get("name") or ""), str(form.get("query") or ""))
    return redirect("/search?" + rec.query, "saved_search")


@pages.post("/search/saved/{saved_id}/delete")
def delete_search(saved_id: int, ctx: PageCtx, form: Form) -> Response:
    search.delete_saved(ctx, saved_id)
    return redirect("/search", "deleted_search")


@api_router.get("/search")
def api_search(request: Request, ctx: APICtx) -> dict[str, Any]:
    """Calls whose transcript contains every term of `q` (space-separated), with the call list's filters
    (agent, team, date_from, date_to, rule, score_min, score_max, channel, grade, fatal, page)."""
    hits = search.search(ctx, request.query_params.get("q"), _filter(request))
    return {"terms": hits.terms, "total": hits.total, "more": hits.more, "scanned_terms": hits.scanned, "results": [
        {"id": h.call.id, "call_id": h.call.call_id, "call_at": h.call.call_at.isoformat(),
         "agent": h.call.agent.code if h.call.agent else None, "score": h.call.score, "matches": h.matches,
         "snippets": [{"utterance": s.utterance, "role": s.role, "start": s.start, "html": str(s.html)}
                      for s in h.snippets]} for h in hits.rows]}


router = APIRouter()
router.include_router(pages)
router.include_router(api_router)
