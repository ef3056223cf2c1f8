"""What every console page shares: the console's state, the signed-in user, CSRF, templates."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from worker.ui import auth
from worker.ui.photos import PhotoReader

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class Console:
    """The app's state: accounts (none: no login, loopback only), the database, photos."""

    accounts: dict[str, auth.Account]
    sessions: sessionmaker[Session]
    read_role: str
    photos: PhotoReader
    artifacts_dir: Path  # run reports fetched from the artifact store, to serve
    s3_endpoint_url: str | None = None

    @property
    def login_required(self) -> bool:
        return bool(self.accounts)

    @contextmanager
    def reading(self, *, reporting: bool = True) -> Iterator[Session]:
        """A read-only transaction, as the reporting role where `reporting` (its tables only)."""
        with self.sessions() as session, session.begin():
            session.execute(text("SET TRANSACTION READ ONLY"))
            if reporting and self.read_role:
                session.execute(text(f"SET LOCAL ROLE {self.read_role}"))
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        with self.sessions() as session, session.begin():
            yield session


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, needed: str) -> bool:
        return auth.may(self.role, needed)


class LoginNeeded(Exception):
    """Raised by pages when nobody is signed in; the app redirects to /login."""


def console(request: Request) -> Console:
    return request.app.state.console  # type: ignore[no-any-return]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every form posts it back."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def user(request: Request) -> User:
    """The signed-in user; on a console without accounts, the local operator."""
    if not console(request).login_required:
        return User(auth.LOCAL, "operator")
    name, role = request.session.get("user"), request.session.get("role")
    account = console(request).accounts.get(name) if isinstance(name, str) else None
    if account is None or account.role != role:  # removed or changed since signing in
        request.session.pop("user", None)
        raise LoginNeeded
    return User(account.name, account.role)


def require(request: Request, role: str) -> User:
    """The user, if their role covers `role`; 403 with what is needed otherwise."""
    who = user(request)
    if not who.may(role):
        raise HTTPException(403, f"{who.name} is a {who.role}: this needs the {role} role")
    return who


async def checked_form(request: Request) -> dict[str, str]:
    """The posted form's fields, once its CSRF token matches the session's; 403 otherwise."""
    form = await request.form()
    sent, expected = form.get("csrf"), request.session.get("csrf")
    if not isinstance(sent, str) or not expected or not secrets.compare_digest(sent, expected):
        raise HTTPException(403, "the form's CSRF token is missing or stale: reload the page")
    return {k: v for k, v in form.items() if isinstance(v, str)}


# A POST handler's form, its CSRF token checked first: handlers stay plain functions, which
# FastAPI runs in its thread pool (database writes and password hashing never block the loop).
PostedForm = Annotated[dict[str, str], Depends(checked_form)]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: the template with the user, the CSRF token and a one-time notice."""
    notice = request.session.pop("notice", None)
    try:
        who: User | None = user(request)
    except LoginNeeded:
        who = None
    context |= {"me": who, "csrf": csrf_token(request), "notice": notice}
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def notify(request: Request, message: str) -> None:
    """A notice shown once, on the next page (after a form's redirect)."""
    request.session["notice"] = message


def when(value: Any) -> str:
    """A timestamp for people: UTC, to the minute."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "-" if value is None else str(value)


def number(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "-"


templates.env.filters["when"] = when
templates.env.filters["number"] = number
