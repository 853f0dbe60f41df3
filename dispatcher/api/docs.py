"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc`, served with their assets.

Nothing is loaded from outside the app: on an operator's internal network a CDN is out of reach.
The pages hold no inline script (their Content-Security-Policy allows none); the vendored files
and their licences are in `static/` (see its README).
"""

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
PREFIX = "/static"

_SWAGGER = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{PREFIX}/swagger-ui/swagger-ui.css">
</head><body><div id="swagger-ui"></div>
<script src="{PREFIX}/swagger-ui/swagger-ui-bundle.js"></script>
<script src="{PREFIX}/swagger-ui/init.js"></script>
</body></html>
"""

_REDOC = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{title}}</title>
<link rel="icon" href="data:,">
<meta name="viewport" content="width=device-width, initial-scale=1">
</head><body><redoc spec-url="/openapi.json"></redoc>
<script src="{PREFIX}/redoc/redoc.standalone.js"></script>
</body></html>
"""


class Assets(StaticFiles):
    """The vendored files, cacheable for a day (they change only with a release)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a file with its Cache-Control."""

        async def cached(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Cache-Control"] = "public, max-age=86400"
            await send(message)

        await super().__call__(scope, receive, cached)


def install(app: FastAPI) -> None:
    """Add `/docs`, `/redoc` and the assets they load (the app is built without FastAPI's own)."""
    app.mount(PREFIX, Assets(directory=STATIC), name="static")
    title = html.escape(app.title)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(_SWAGGER.format(title=f"{title} - Swagger UI"))

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC.format(title=f"{title} - ReDoc"))
