"""`/api/docs`: Swagger UI served from this server (the app's Content-Security-Policy allows only its own
scripts, so the CDN page FastAPI builds by default stays blank). The Swagger UI files come from the
`fastapi-offline` package (MIT, part of the server extra); the page starts them with a script file of
ours, not an inline script."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/api/docs/assets"

PAGE = """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>kefuqa 客服质检 API 文档</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css"><link rel="icon" href="/static/favicon.svg"></head>
<body><div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script><script src="/api/docs/start.js"></script></body></html>
"""

START = """(function () {
  var box = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({url: box.getAttribute('data-openapi'), dom_id: '#swagger-ui',
    deepLinking: true, presets: [SwaggerUIBundle.presets.apis], layout: 'BaseLayout'});
})();
"""


def assets_folder() -> Path | None:
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = Path(fastapi_offline.__file__).with_name("static")
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None


def install(app: FastAPI, openapi_url: str = "/api/openapi.json") -> None:
    folder = assets_folder()

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> Response:
        if folder is None:
            return PlainTextResponse("API 文档需要 fastapi-offline（pip install 'kefuqa[server]'）；"
                                     f"接口定义见 {openapi_url}", status_code=503)
        return HTMLResponse(PAGE.format(assets=ASSETS, openapi=openapi_url))

    @app.get("/api/docs/start.js", include_in_schema=False)
    def start() -> Response:
        return Response(START, media_type="text/javascript")

    if folder is not None:
        app.mount(ASSETS, StaticFiles(directory=folder), name="api-docs-assets")
