"""Request plumbing shared by the API and the web pages: database sessions, who is asking, CSRF."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Response
from sqlalchemy.orm import Session as DBSession
from starlette.concurrency import run_in_threadpool

from .errors import (
    Busy,
    Conflict,
    DomainError,
    Forbidden,
    Invalid,
    NotFound,
    Throttled,
    TooLarge,
    Unauthorized,
)
from .models import Session, User
from .security import find_session, same
from .usecases import Ctx
from .usecases.auth import request_token
from .workbench import Workbench

SESSION_COOKIE = "kefuqa_session"
LOGIN_CSRF_COOKIE = "kefuqa_login_csrf"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class LoginRequired(Exception):
    """A web page needs a login: answered with a redirect to /login."""


class PageForbidden(Exception):
    """A web page the user's role may not open."""


@dataclass
class Principal:
    user: User
    session: Session
    via: str  # cookie | bearer

    @property
    def csrf(self) -> str:
        return self.session.csrf_token


def workbench(request: Request) -> Workbench:
    return request.app.state.workbench  # type: ignore[no-any-return]


async def get_db(request: Request) -> AsyncIterator[DBSession]:
    """A session for the request; closed (connection back to the pool) in a worker thread at the end."""
    db = workbench(request).sessions()
    try:
        yield db
    finally:
        await run_in_threadpool(db.close)


DB = Annotated[DBSession, Depends(get_db)]


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def token(request: Request) -> tuple[str | None, str]:
    """The request's session token and how it came ("bearer" header or "cookie")."""
    return request_token(request.headers.get("authorization"), request.cookies.get(SESSION_COOKIE))


STATUS: dict[type[DomainError], int] = {NotFound: 404, Forbidden: 403, Unauthorized: 401, Conflict: 409,
                                        Invalid: 422, TooLarge: 413, Busy: 503,
                                        Throttled: 429}


def http_status(exc: DomainError) -> int:
    """The HTTP status of a use case's domain error (the API's answer, the error page's code)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def principal(request: Request, db: DBSession) -> Principal | None:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    tok, via = token(request)
    found = find_session(db, tok)
    if found is None:
        return None
    p = Principal(found[1], found[0], via)
    request.state.principal = p
    return p


async def api_user(request: Request, db: DB) -> Principal:
    p = await run_in_threadpool(principal, request, db)
    if p is None:
        raise HTTPException(401, "未登录或登录已过期", headers={"WWW-Authenticate": "Bearer"})
    if p.via == "cookie" and request.method in UNSAFE:
        # A browser session calling the API: the page must echo its CSRF token in a header.
        if not same(request.headers.get("x-csrf-token"), p.csrf):
            raise HTTPException(403, "CSRF 校验失败")
    return p


APIUser = Annotated[Principal, Depends(api_user)]


async def api_ctx(request: Request, db: DB, p: APIUser) -> Ctx:
    """What a use case needs, for an API request by a logged-in user."""
    return Ctx(workbench(request), db, p.user, client_ip(request))


APICtx = Annotated[Ctx, Depends(api_ctx)]


def api_roles(*roles: str) -> Callable[..., Any]:
    async def dep(p: APIUser) -> Principal:  # async: no thread hop for a comparison
        if p.user.role not in roles:
            raise HTTPException(403, "当前角色无此权限")
        return p

    return dep


def _page_principal(request: Request, db: DBSession) -> Principal | None:
    p = principal(request, db)
    if p is not None:  # pages show the user's team and agent, also after this request's session is closed
        _ = p.user.team, p.user.agent and p.user.agent.team
    return p


async def page_user(request: Request, db: DB) -> Principal:
    p = await run_in_threadpool(_page_principal, request, db)
    if p is None or p.via != "cookie":
        raise LoginRequired()
    return p


PageUser = Annotated[Principal, Depends(page_user)]


async def page_ctx(request: Request, db: DB, p: PageUser) -> Ctx:
    """What a use case needs, for a page of a logged-in user."""
    return Ctx(workbench(request), db, p.user, client_ip(request))


PageCtx = Annotated[Ctx, Depends(page_ctx)]


def page_roles(*roles: str) -> Callable[..., Any]:
    async def dep(p: PageUser) -> Principal:
        if p.user.role not in roles:
            raise PageForbidden()
        return p

    return dep


def csv_download(body: str) -> Response:
    """A CSV export as a download (the API's and the call list page's)."""
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": 'attachment; filename="kefuqa-calls.csv"'})


async def form_data(request: Request) -> dict[str, Any]:
    form = await request.form()
    return {k: v for k, v in form.multi_items()}


async def checked_form(request: Request, p: PageUser) -> dict[str, Any]:
    """The posted form of a logged-in page, after its CSRF token was checked."""
    form = await request.form()
    if not same(str(form.get("csrf_token") or ""), p.csrf):
        raise HTTPException(403, "表单已过期或来源不明（CSRF 校验失败），请刷新页面后重试")
    return {k: v for k, v in form.items()}


Form = Annotated[dict[str, Any], Depends(checked_form)]
