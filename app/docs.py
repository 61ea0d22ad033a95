"""The interactive documentation, served with every asset from the installed packages: no CDN, no internet.

Provincial networks are often cut off from the internet; FastAPI's default pages load Swagger UI and ReDoc
from a CDN and stay blank there. The assets (Swagger UI's bundle and stylesheet, a favicon) come from the
``fastapi-offline`` package, which ships them (Swagger UI: Apache-2.0, the package: MIT; see
``docs/contract.md``, Health and metrics) and are served under ``/docs/static/``. The
pages exist outside the ``prod`` profile only, like ``/openapi.json``.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.requests import Request
from starlette.staticfiles import StaticFiles

DOCS_URL = "/docs"
DOCS_OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs/static"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
DOCS_PAGES = (DOCS_URL, DOCS_OAUTH2_REDIRECT_URL)
"""The HTML pages (they get the documentation's Content-Security-Policy, ``app.middleware``)."""


def install_docs(app: FastAPI, openapi_url: str) -> None:
    """Add ``/docs`` (Swagger UI) and its assets to ``app``. ReDoc is not offered: its page loads its logo
    from its vendor's CDN whatever the options say."""
    title = f"{app.title}: API"

    async def swagger_ui(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=title,
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=DOCS_OAUTH2_REDIRECT_URL,
            # No online validator badge: it would send the document's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(DOCS_OAUTH2_REDIRECT_URL, oauth2_redirect, include_in_schema=False)
