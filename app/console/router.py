"""The console's pages (docs/contract.md, section 15): sign-in, the operator's own account, the dashboard,
and the role pages.

Every page but the sign-in ones and the static files goes through ``require_operator``: it reads the
session and its operator from the database on every request (so a disable, a password reset or a role
change on any replica ends the session at the next request), sends a session that is still at an earlier
stage (code, first password change, enrolment) to that stage's page, answers 403 for a page the roles do not
allow, and for a ``POST`` checks the session's CSRF token before anything else runs (403, nothing changed).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final
from urllib.parse import quote

from cryptography.fernet import Fernet
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from app.addresses import request_client_ip
from app.admin.service import AdminService
from app.auth.dependencies import KEYS
from app.auth.keys import load_encryption_key
from app.console.dashboard import VIETNAM, dashboard
from app.console.text import LANGS, Lang, translate
from app.db import DbSession
from app.errors import ValidationFailed
from app.operators import credentials
from app.operators.service import OperatorService, SignedIn
from app.problems import REQUEST_ID_KEY
from app.state import AppState

SESSION_COOKIE: Final = "dancu_session"
LOGIN_CSRF_COOKIE: Final = "dancu_login_csrf"
LANG_COOKIE: Final = "dancu_lang"
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "x-csrf-token"
COOKIE_PATH: Final = "/console"
ALL_STAGES: Final = ("code", "change_password", "enrol", "ready")
STAGE_PAGES: Final = {
    "code": "/console/login/code",
    "change_password": "/console/password",
    "enrol": "/console/enrol",
    "ready": "/console/",
}
MAX_FORM_VALUE: Final = 1024

NAV: Final = (
    ("dashboard", "/console/", frozenset[str]()),
    ("clients", "/console/clients", frozenset({"admin"})),
    ("purposes", "/console/purposes", frozenset({"admin"})),
    ("keys", "/console/keys", frozenset({"admin"})),
    ("approvals", "/console/approvals", frozenset({"approver"})),
    ("audit", "/console/audit", frozenset({"auditor"})),
    ("integrity", "/console/integrity", frozenset({"auditor"})),
    ("report", "/console/report", frozenset({"auditor"})),
    ("statistics", "/console/statistics", frozenset({"analyst"})),
    ("alerts", "/console/alerts", frozenset({"auditor"})),
)
"""The navigation: each page and the roles that open it (any one of them; none: every operator)."""
PAGE_ROLES: Final = {key: roles for key, _href, roles in NAV}

TEMPLATES: Final = Path(__file__).parent / "templates"
STATIC: Final = Path(__file__).parent / "static"
_STATIC_TYPES: Final = {
    "htmx.min.js": "text/javascript; charset=utf-8",
    "htmx.LICENSE.txt": "text/plain; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "report.js": "text/javascript; charset=utf-8",
    "console-copy.js": "text/javascript; charset=utf-8",
}
_STATIC_FILES: Final = {name: (STATIC / name).read_bytes() for name in _STATIC_TYPES}

router = APIRouter(prefix="/console", include_in_schema=False)

PUBLIC_PATHS: Final = frozenset(
    {"/console/login", "/console/login/code", "/console/lang", "/console/static/{name}"}
)
"""Console paths open without a signed-in session (the code step checks its own half-made session)."""


def _vntime(at: datetime | None) -> str:
    if at is None:
        return "–"
    return at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S")


_ENV: Final = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), auto_reload=False
)
_ENV.filters["vntime"] = _vntime


# --- the request's console context ---------------------------------------------------------------------------


@dataclass(slots=True)
class Console:
    """One console request: its language, its database unit of work, the operators service, and (once
    ``require_operator`` has run) the signed-in operator."""

    request: Request
    db: AsyncSession
    state: AppState
    lang: Lang
    service: OperatorService
    me: SignedIn | None = None

    @property
    def secure_cookies(self) -> bool:
        return self.state.settings.profile != "dev"

    async def rollback(self) -> None:
        """Undo what this request changed so far (a refusal caught to render a page), then read the session
        and its operator again (the rollback expired them)."""
        await self.db.rollback()
        if self.me is not None:
            token = self.request.cookies.get(SESSION_COOKIE)
            self.me = await self.service.session_for(token, stages=ALL_STAGES)

    def admin(self) -> AdminService:
        """The REST API's administration use cases on behalf of the signed-in operator (``op:<username>``)."""
        assert self.me is not None  # noqa: S101 - require_operator set it
        return AdminService(
            self.db,
            self.state[KEYS],
            actor=self.me.actor,
            request_id=self.service.request_id,
            require_approval=self.state.settings.admin.require_approval,
        )

    def t(self, key: str) -> str:
        return translate(key, self.lang)

    def page(self, template: str, title_key: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        me = self.me if self.me is not None and self.me.session.stage == "ready" else None
        nav = []
        if me is not None:
            here = self.request.url.path
            nav = [
                {"key": key, "href": href, "current": here == href}
                for key, href, roles in NAV
                if not roles or roles & me.roles
            ]
        html = _ENV.get_template(template).render(
            lang=self.lang,
            other_lang="en" if self.lang == "vi" else "vi",
            here=self.request.url.path,
            t=self.t,
            title=self.t(title_key),
            me=me,
            nav=nav,
            csrf=self.me.session.csrf_token if self.me is not None else None,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def set_session(self, response: Response, token: str) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            token,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=self.secure_cookies,
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(
            SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=self.secure_cookies
        )


class ConsoleRedirect(Exception):
    """Answer with a 303 to ``location`` (no session, or a session at an earlier stage)."""

    def __init__(self, location: str, *, clear_session: bool = False) -> None:
        super().__init__(location)
        self.location = location
        self.clear_session = clear_session


class ConsoleForbidden(Exception):
    """Answer 403 with the forbidden page: a page the roles do not allow, or a missing or wrong CSRF token.

    The page is rendered when this is raised: the request's transaction is rolled back on the way out, and
    the operator's row with it."""

    def __init__(self, console: Console, kind: str) -> None:
        super().__init__(kind)
        if kind == "csrf":
            self.response = console.page(
                "forbidden.html", "csrf.title", status=403, text=console.t("csrf.text")
            )
        else:
            self.response = console.page(
                "forbidden.html", "forbidden.title", status=403, text=console.t("forbidden.text")
            )


def _language(request: Request) -> Lang:
    chosen = request.cookies.get(LANG_COOKIE)
    return "en" if chosen == "en" else "vi"


async def console_context(request: Request, db: DbSession) -> Console:
    state: AppState = request.app.state.dancu
    service = OperatorService(
        db,
        _fernet(state),
        actor="op:?",
        request_id=request.scope.get("state", {}).get(REQUEST_ID_KEY),
        require_totp=state.settings.console_requires_totp,
        client_ip=request_client_ip(request, state.settings.trusted_proxies),
    )
    return Console(request=request, db=db, state=state, lang=_language(request), service=service)


ConsoleDep = Annotated[Console, Depends(console_context)]


_FERNETS: dict[int, Fernet] = {}


def _fernet(state: AppState) -> Fernet:
    """The Fernet of ``DANCU_KEYS__ENCRYPTION_KEY`` (authenticator secrets), made once per app."""
    fernet = _FERNETS.get(id(state))
    if fernet is None:
        fernet = _FERNETS[id(state)] = Fernet(load_encryption_key(state.settings))
    return fernet


async def _form(request: Request) -> dict[str, str]:
    """The posted form's text members (each cut at 1024 characters; files ignored)."""
    form = await request.form()
    return {key: value[:MAX_FORM_VALUE] for key, value in form.items() if isinstance(value, str)}


def _csrf_matches(expected: str | None, offered: str | None) -> bool:
    return bool(expected and offered) and hmac.compare_digest(
        (expected or "").encode(), (offered or "").encode()
    )


def require_operator(
    *roles: str, stages: Iterable[str] = ("ready",)
) -> Callable[[Request, Console], Awaitable[Console]]:
    """The dependency of a console page: a live session at one of ``stages`` whose operator holds one of
    ``roles`` (none: any operator), and for a ``POST`` the session's CSRF token."""
    wanted_roles = frozenset(roles)
    wanted_stages = tuple(stages)

    async def require_operator(request: Request, console: ConsoleDep) -> Console:
        token = request.cookies.get(SESSION_COOKIE)
        me = await console.service.session_for(token, stages=ALL_STAGES)
        if me is None:
            raise ConsoleRedirect("/console/login", clear_session=token is not None)
        console.me = me
        console.service.actor = me.actor
        if me.session.stage not in wanted_stages:
            raise ConsoleRedirect(STAGE_PAGES[me.session.stage])
        if request.method == "POST":
            offered = request.headers.get(CSRF_HEADER) or (await _form(request)).get(CSRF_FIELD)
            if not _csrf_matches(me.session.csrf_token, offered):
                raise ConsoleForbidden(console, "csrf")
        if wanted_roles and not wanted_roles & me.roles:
            raise ConsoleForbidden(console, "role")
        return console

    return require_operator


Ready = Annotated[Console, Depends(require_operator())]


def install(app: FastAPI) -> None:
    """The console's routes and its two answers raised from dependencies (redirect, 403)."""
    from app.console.admin_extra import router as admin_extra_router  # the pages build on this module
    from app.console.audit_pages import router as audit_router
    from app.console.clients import router as clients_router
    from app.console.report_pages import router as report_router
    from app.console.stats_pages import router as stats_router

    app.include_router(router)
    app.include_router(clients_router)
    app.include_router(admin_extra_router)
    app.include_router(audit_router)
    app.include_router(stats_router)
    app.include_router(report_router)
    app.add_exception_handler(ConsoleRedirect, _redirect_handler)  # type: ignore[arg-type]
    app.add_exception_handler(ConsoleForbidden, _forbidden_handler)  # type: ignore[arg-type]


async def _redirect_handler(request: Request, exc: ConsoleRedirect) -> Response:
    response = RedirectResponse(exc.location, status_code=303)
    if exc.clear_session:
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


async def _forbidden_handler(request: Request, exc: ConsoleForbidden) -> Response:
    return exc.response


# --- static files and language ----------------------------------------------------------------------------


@router.get("/static/{name}")
async def static_file(name: str) -> Response:
    body = _STATIC_FILES.get(name)
    if body is None:
        return Response(status_code=404)
    return Response(body, media_type=_STATIC_TYPES[name])


def _local(next_path: str | None) -> str:
    """``next_path`` when it is a console path of this site, else the dashboard."""
    if next_path and next_path.startswith("/console/") and "//" not in next_path and "\\" not in next_path:
        return quote(next_path, safe="/-_.~")
    return "/console/"


@router.get("/lang")
async def switch_language(request: Request, to: str = "vi", next: str | None = None) -> Response:
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        LANG_COOKIE, to if to in LANGS else "vi", path=COOKIE_PATH, max_age=365 * 86400, samesite="lax"
    )
    return response


# --- signing in ------------------------------------------------------------------------------------------------


def _login_page(console: Console, *, error: bool = False, status: int = 200) -> Response:
    csrf = console.request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = console.page(
        "login.html",
        "login.title",
        status=status,
        login_csrf=csrf,
        error=console.t("login.failed") if error else None,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=console.secure_cookies,
    )
    return response


@router.get("/login")
async def login_page(console: ConsoleDep) -> Response:
    return _login_page(console)


@router.post("/login")
async def login(console: ConsoleDep) -> Response:
    form = await _form(console.request)
    if not _csrf_matches(console.request.cookies.get(LOGIN_CSRF_COOKIE), form.get(CSRF_FIELD)):
        return console.page("forbidden.html", "csrf.title", status=403, text=console.t("csrf.text"))
    username = form.get("username", "").strip().lower()[:64]
    outcome = await console.service.login(username, form.get("password", ""))
    if outcome.denied or outcome.token is None or outcome.stage is None:
        return _login_page(console, error=True, status=401)
    response = RedirectResponse(STAGE_PAGES[outcome.stage], status_code=303)
    console.set_session(response, outcome.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


@router.get("/login/code")
async def code_page(console: Annotated[Console, Depends(require_operator(stages=("code",)))]) -> Response:
    return console.page("login_code.html", "login.code.title")


@router.post("/login/code")
async def code(console: Annotated[Console, Depends(require_operator(stages=("code",)))]) -> Response:
    form = await _form(console.request)
    token = console.request.cookies.get(SESSION_COOKIE) or ""
    outcome = await console.service.login_code(token, form.get("code", ""))
    if outcome.denied or outcome.token is None or outcome.stage is None:
        if await console.service.session_for(token, stages=("code",)) is None:  # locked: the session ended
            response = _login_page(console, error=True, status=401)
            console.clear_session(response)
            return response
        return console.page(
            "login_code.html", "login.code.title", status=401, error=console.t("login.failed")
        )
    response = RedirectResponse(STAGE_PAGES[outcome.stage], status_code=303)
    console.set_session(response, outcome.token)
    return response


@router.post("/logout")
async def logout(console: Annotated[Console, Depends(require_operator(stages=ALL_STAGES))]) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    await console.service.logout(console.me)
    response = RedirectResponse("/console/login", status_code=303)
    console.clear_session(response)
    return response


# --- the operator's own credentials ----------------------------------------------------------------------


PasswordStage = Annotated[Console, Depends(require_operator(stages=("change_password", "ready")))]
EnrolStage = Annotated[Console, Depends(require_operator(stages=("enrol", "ready")))]


def _password_page(console: Console, *, error: str | None = None, status: int = 200) -> Response:
    first = console.me is not None and console.me.session.stage == "change_password"
    return console.page("password.html", "password.title", status=status, first=first, error=error)


@router.get("/password")
async def password_page(console: PasswordStage) -> Response:
    return _password_page(console)


@router.post("/password")
async def change_password(console: PasswordStage) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    form = await _form(console.request)
    try:
        stage = await console.service.change_password(
            console.me, form.get("current", ""), form.get("new", ""), form.get("confirm", "")
        )
    except ValidationFailed as err:
        code = err.errors[0]["code"] if err.errors else "password_wrong"
        return _password_page(console, error=console.t(f"error.{code}"), status=422)
    return RedirectResponse(STAGE_PAGES[stage], status_code=303)


def _enrol_page(console: Console, secret: str, *, error: str | None = None, status: int = 200) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return console.page(
        "enrol.html",
        "enrol.title",
        status=status,
        secret=secret,
        qr_svg=Markup(credentials.totp_qr_svg(secret, console.me.username)),  # noqa: S704 - segno's SVG
        required=console.me.session.stage == "enrol",
        error=error,
    )


@router.get("/enrol")
async def enrol_page(console: EnrolStage) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    return _enrol_page(console, console.service.start_enrolment(console.me))


@router.post("/enrol")
async def enrol(console: EnrolStage) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    form = await _form(console.request)
    if await console.service.finish_enrolment(console.me, form.get("code", "")):
        return RedirectResponse("/console/", status_code=303)
    secret = console.service.pending_secret(console.me) or console.service.start_enrolment(console.me)
    return _enrol_page(console, secret, error=console.t("enrol.wrong"), status=422)


@router.get("/account")
async def account(console: Ready) -> Response:
    return console.page("account.html", "account.title")


# --- the dashboard and the role pages ----------------------------------------------------------------------


@router.get("/")
async def dashboard_page(console: Ready) -> Response:
    assert console.me is not None  # noqa: S101 - require_operator set it
    board = await dashboard(console.db, with_pending=bool({"admin", "approver"} & console.me.roles))
    return console.page("dashboard.html", "dash.title", d=board)


def _placeholder(key: str, issue: int) -> Callable[..., Awaitable[Response]]:
    """A page issue 16 or 19 builds: already behind its roles (403 for the others), marked as not built."""

    async def placeholder(console: Console) -> Response:
        return console.page("placeholder.html", f"nav.{key}", issue=issue)

    # Set here, not written above: the dependency carries this page's roles.
    placeholder.__annotations__["console"] = Annotated[Console, Depends(require_operator(*PAGE_ROLES[key]))]
    return placeholder


PLACEHOLDERS: Final[Mapping[str, int]] = {
    "alerts": 19,
}
for _key, _issue in PLACEHOLDERS.items():
    router.add_api_route(f"/{_key}", _placeholder(_key, _issue), methods=["GET"], name=f"console_{_key}")
