"""The FastAPI application: JSON API under /api (OpenAPI at /api/docs), web pages elsewhere."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..rules.yamlsrc import chinese_message
from .config import Settings
from .deps import LoginRequired, PageForbidden, http_status
from .errors import Busy, DomainError, Throttled
from .workbench import Workbench

WEB = Path(__file__).with_name("web")

CSP = ("default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self' 'unsafe-inline'; "
       "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy", CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class Guard:
    """Pure ASGI middleware: refuses request bodies over the limit (by header and while streaming) and adds
    security headers to every response."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(send)
                    return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in have)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, limited, send_with_headers)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"请求过大（上限 {self.max_body // (1024 * 1024)} MB）"},
                          ensure_ascii=False).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json; charset=utf-8"),
                                (b"content-length", str(len(body)).encode())] + SECURITY_HEADERS})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api/") and "text/html" in request.headers.get("accept", "text/html")


def create_app(settings: Settings | None = None, workbench: Workbench | None = None, *,
               setup: bool = False) -> FastAPI:
    """The application. `setup=True` migrates and seeds on creation (`kefuqa serve` does it beforehand)."""
    from . import api, web

    wb = workbench or Workbench(settings or Settings.from_env())
    if setup:
        wb.setup()
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        from .assist import flush_at_shutdown

        await flush_at_shutdown(app)

    app = FastAPI(
        lifespan=lifespan,
        title="kefuqa 客服质检 API",
        version="1",
        description=(
            "Score customer-service conversations and work with the results: upload, reports, call lists, "
            "reviews, appeals, rulebooks, CSV export.\n\n"
            "Authenticate with `POST /api/auth/login` and send `Authorization: Bearer <token>`. "
            "Browser sessions (cookie) must send the page's CSRF token as `X-CSRF-Token` on writes."
        ),
        docs_url=None,  # served with local assets by api_docs (the CSP blocks the CDN's)
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.workbench = wb
    from .api_docs import install as _docs  # issue 9: Swagger UI from local files

    _docs(app)
    app.include_router(api.router)
    app.include_router(web.router)
    from .web_inspection import router as inspection  # issue 13: search, plans, calibration, coaching, trends

    app.include_router(inspection)
    from .web_reviews import router as review_bulk  # issue 9: bulk verdicts in the review queue

    app.include_router(review_bulk)
    from .web_training import router as training  # issue 12: quizzes, scenarios, drills, assignments

    app.include_router(training)
    from .assist import router as assist  # issue 11: real-time agent assist (WebSocket)

    app.include_router(assist)
    from .assist_audio import router as assist_audio  # issue 11: the audio path (PCM over WebSocket)

    app.include_router(assist_audio)
    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")

    @app.exception_handler(LoginRequired)
    async def _login(request: Request, exc: LoginRequired) -> Any:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        from urllib.parse import quote

        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def _forbidden_page(request: Request, exc: PageForbidden) -> Any:
        return web.error_page(request, 403, "当前角色无权打开此页面")

    def _status(request: Request, code: int, message: str) -> Any:
        if _wants_html(request):
            return web.error_page(request, code, message)
        return JSONResponse({"detail": message}, status_code=code)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Any:
        """A use case refused: the API answers the status with {"detail": message}, a page the error page."""
        response = _status(request, http_status(exc), str(exc))
        if isinstance(exc, Busy | Throttled):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    from .unavailable import install as _unavailable  # issue 9: database gone or pool exhausted → 503

    _unavailable(app, _status)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Any:
        if _wants_html(request) and exc.status_code != 401:
            return web.error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Any:
        # pydantic's errors with their message in Chinese (the rulebook lint's words); type and place kept
        errors = [{**e, "msg": chinese_message(e)} for e in exc.errors()]
        if _wants_html(request):
            return web.error_page(request, 422, "请求参数不正确：" + "；".join(
                f"{'.'.join(str(p) for p in e.get('loc', ())[1:])} {e['msg']}" for e in errors))
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    app.add_middleware(Guard, max_body=wb.settings.max_request_bytes)
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory kefuqa.service.app:app_from_env` (workers of `kefuqa serve`)."""
    return create_app(Settings.from_env())
