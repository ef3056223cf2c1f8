"""`crackq ui`: the inspector's console, a server-rendered FastAPI app (no JavaScript build).

Pages: the review queue (/review), assets (/assets), models (/models). Photos are read
through the worker's guarded readers (worker.ui.photos). With accounts configured every
page needs a login; without, the console serves loopback only (worker.cli.ui refuses
otherwise) and its user is the local operator. Every form carries a CSRF token.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import quote

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlalchemy.orm import Session, sessionmaker
from starlette.middleware.sessions import SessionMiddleware

from worker.settings import Settings
from worker.ui import auth
from worker.ui.pages import assets, models, review
from worker.ui.photos import PhotoReader
from worker.ui.web import (
    HERE,
    ROLE_NAME,
    Console,
    LoginNeeded,
    PostedForm,
    console,
    notify,
    render,
)

log = logging.getLogger(__name__)
SESSION_HOURS = 12


def create_app(settings: Settings, sessions: sessionmaker[Session]) -> FastAPI:
    """The console app over `sessions`, configured by `settings` (CRACKQ_UI_*)."""
    users = settings.ui_users.get_secret_value() if settings.ui_users else None
    accounts = auth.load_accounts(users, settings.ui_users_file)
    if settings.ui_read_role and not ROLE_NAME.match(settings.ui_read_role):
        raise ValueError(f"CRACKQ_UI_READ_ROLE={settings.ui_read_role!r} is not a role name")
    key = settings.ui_secret_key.get_secret_value() if settings.ui_secret_key else None
    key = key or None  # set but empty (a compose pass-through): as unset
    if key is None and accounts:
        log.warning("CRACKQ_UI_SECRET_KEY is unset: sessions end when the console restarts")
    artifacts_dir = settings.data_dir / "cache" / "ui"
    artifacts_dir.mkdir(parents=True, exist_ok=True)

    app = FastAPI(title="crackq console", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.console = Console(
        accounts, sessions, settings.ui_read_role, PhotoReader(settings), artifacts_dir,
        settings.s3_endpoint_url,
    )  # fmt: skip
    app.add_middleware(
        SessionMiddleware,
        secret_key=key or secrets.token_urlsafe(32),
        session_cookie="crackq_console",
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    for router in (review.router, assets.router, models.router):
        app.include_router(router)
    _add_login(app)
    return app


def _add_login(app: FastAPI) -> None:
    @app.get("/")
    def home() -> Response:
        return RedirectResponse("/review", status_code=303)

    @app.get("/login")
    def login_page(request: Request, next: str = "/review") -> Response:
        return render(request, "login.html", next=_local(next), failed=False)

    @app.post("/login")
    def login(request: Request, form: PostedForm) -> Response:
        name, target = form.get("name", "").strip(), _local(form.get("next", "/review"))
        account = console(request).accounts.get(name)
        if not auth.verify(account, form.get("password", "")) or account is None:
            log.warning("console login failed for %r from %s", name, _client(request))
            return render(request, "login.html", 401, next=target, failed=True, name=name)
        request.session.clear()  # a fresh session (and CSRF token) for the signed-in user
        request.session.update(user=account.name, role=account.role)
        log.info("console login: %s (%s) from %s", account.name, account.role, _client(request))
        notify(request, f"signed in as {account.name} ({account.role})")
        return RedirectResponse(target, status_code=303)

    @app.post("/logout")
    def logout(request: Request, form: PostedForm) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(LoginNeeded)
    def to_login(request: Request, exc: LoginNeeded) -> Response:
        if request.method != "GET":
            return Response("sign in first", status_code=401, media_type="text/plain")
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(HTTPException)
    def error_page(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        if path.startswith("/photo/") or "/report/" in path:  # images: the reason as text
            return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")
        return render(request, "error.html", exc.status_code, status=exc.status_code,
                      detail=exc.detail)  # fmt: skip


def _local(target: str) -> str:
    """Only a path on this site: a login link cannot send people elsewhere."""
    elsewhere = target.startswith(("//", "/\\")) or any(c in target for c in "\r\n")
    return target if target.startswith("/") and not elsewhere else "/review"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"
