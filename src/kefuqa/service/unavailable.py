"""When the database cannot serve a request: its server is gone or refuses connections, or every pooled
connection is busy. The API answers 503 with the reason and a Retry-After, a page the error page; never
a plain 500. The reason names the database by its URL without the password (`safe_url`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

RETRY_AFTER = 5


def safe_url(url: str) -> str:
    """The database URL as people may see it: the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown without its credentials part
        return url.split("@")[-1]


def reason(exc: BaseException, url: str) -> str:
    """One Chinese line: what went wrong with the database at `url` (no password, no driver traceback)."""
    if isinstance(exc, PoolTimeout):
        return "服务繁忙：数据库连接已全部占用，请稍后重试"
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = detail[0][:200] if detail else type(exc).__name__
    return f"无法连接数据库 {safe_url(url)}：{first}"


def install(app: FastAPI, answer: Callable[[Request, int, str], Any]) -> None:
    """503 with Retry-After when the database is unreachable, refuses, is locked past the wait, or the pool
    has no free connection, through `answer` (JSON for the API, a page otherwise)."""

    async def _unavailable(request: Request, exc: Exception) -> Any:
        url = request.app.state.workbench.settings.database_url
        response = answer(request, 503, reason(exc, url))
        response.headers["Retry-After"] = str(RETRY_AFTER)
        return response

    for cls in (PoolTimeout, OperationalError, InterfaceError):
        app.add_exception_handler(cls, _unavailable)
