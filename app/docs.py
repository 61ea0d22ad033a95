"""The interactive documentation, served with every asset from the installed packages: no CDN, no internet.

Provincial networks are often cut off from the internet; FastAPI's default pages load Swagger UI and ReDoc
from a CDN and stay blank there. The assets (Swagger UI's bundle and stylesheet, a favicon) come from the
``fastapi-offline`` package, which ships them (Swagger UI: Apache-2.0, the package: MIT; see
``docs/contract.md``, Health and metrics) and are served under ``/docs/static/``. The
pages exist outside the ``prod`` profile only, like ``/openapi.json``.
"""

from __future__ import annotations

import html
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from starlette.requests import Request
from starlette.staticfiles import StaticFiles

from app.errors import GatewayError

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


ERRORS_URL = "/errors"


def error_page(classes: dict[str, type[GatewayError]]) -> str:
    """``/errors``: every problem ``code`` with its status and what it means, in Vietnamese and English. Each
    row's anchor is the code, so ``urn:dancu:problem:<code>`` is documented at ``/errors#<code>``."""
    rows = "\n".join(
        f'<tr id="{html.escape(code)}"><td><code>{html.escape(code)}</code></td><td>{error.status}</td>'
        f"<td>{html.escape(error.title_vi)}<br>{html.escape(error.title_en)}</td>"
        f"<td>{html.escape(error.default_detail_vi)}<br>{html.escape(error.default_detail_en)}</td></tr>"
        for code, error in sorted(classes.items())
    )
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        "<title>dancu-gateway: mã lỗi / error codes</title></head><body>"
        "<h1>Mã lỗi / Error codes</h1>"
        "<p>Mỗi lỗi trả về <code>application/problem+json</code> có <code>type</code> dạng "
        "<code>urn:dancu:problem:&lt;code&gt;</code>; mục của nó ở <code>/errors#&lt;code&gt;</code>. "
        "Khi cần hỗ trợ, hãy gửi kèm <code>request_id</code>.<br>Every problem's <code>type</code> is "
        "<code>urn:dancu:problem:&lt;code&gt;</code>, documented at <code>/errors#&lt;code&gt;</code>; quote "
        "its <code>request_id</code> to support. The full rules: docs/contract.md, section 2.</p>"
        "<table><thead><tr><th>code</th><th>status</th><th>tên / title</th><th>ý nghĩa / meaning</th></tr>"
        f"</thead><tbody>{rows}</tbody></table></body></html>"
    )


def install_error_page(app: FastAPI, classes: dict[str, type[GatewayError]]) -> None:
    """``GET /errors`` (every profile, no token): the page each problem ``type`` is documented on."""
    page = error_page(classes)

    async def errors(request: Request) -> HTMLResponse:
        return HTMLResponse(page)

    app.add_route(ERRORS_URL, errors, include_in_schema=False)
