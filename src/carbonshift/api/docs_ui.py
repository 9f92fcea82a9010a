"""The interactive API docs at /docs, served from the package rather than a CDN.

FastAPI's default page loads Swagger UI from jsDelivr: offline, or behind a strict egress proxy, /docs
is blank. Swagger UI's release files are vendored under static/vendor/swagger-ui (see SOURCES.md
there) and served with the dashboard's static files, which need no login: they are public files. The
page itself and /openapi.json need the API token like any route; a browser sends the dashboard's
login cookie, so "Try it out" works after logging in at /login without pasting a bearer header.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

ASSETS_PATH = "/static/vendor/swagger-ui"


def install(app: FastAPI, title: str) -> None:
    """Serve /docs with the vendored Swagger UI (the dashboard mounts /static)."""

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{title} API",
            swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PATH}/favicon-32x32.png",
            # the cookie rides along with the page's own requests; no token is stored in the browser
            swagger_ui_parameters={"withCredentials": True},
        )
