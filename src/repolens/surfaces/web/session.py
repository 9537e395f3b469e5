"""Who a browser request runs as: the session cookie, resolved into a principal, and the CSRF
check every form post passes.

The cookie is HttpOnly (no script reads it), ``SameSite=Lax`` (a shared search link opened from
another site arrives signed in; its forms still need the CSRF token, which no other site can
read) and ``Secure`` whenever the request came over HTTPS: directly, behind a proxy whose
``X-Forwarded-Proto`` uvicorn trusts (its ``FORWARDED_ALLOW_IPS``), or when
``REPOLENS_PUBLIC_URL`` is an https URL.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, Request, Response

from repolens.access import sessions
from repolens.access.sessions import Session
from repolens.errors import Forbidden, InvalidInput, Unauthorized
from repolens.services import Services
from repolens.surfaces.web import WEB_PREFIX

SESSION_COOKIE = "repolens_session"
SESSION_STATE = "web_session"  # where the quota check leaves the session it resolved
LOGIN_COOKIE = "repolens_login"  # the sign-in form's CSRF token (double submit: no session yet)
CSRF_FIELD = "csrf"
FORM_TYPE = "application/x-www-form-urlencoded"
LOGIN_PATH = f"{WEB_PREFIX}/login"
MAX_FORM_FIELDS = 200  # a workspace form lists every repository; nothing legitimate sends more


class SignInRequired(Exception):
    """The request has no valid session: pages redirect to the sign-in form."""


def services_of(request: Request) -> Services:
    """The app's long-lived services."""
    services: Services = request.app.state.services
    return services


def secure(request: Request) -> bool:
    """Whether cookies must be ``Secure`` for this request."""
    public_url: str = services_of(request).settings.public_url
    return request.url.scheme == "https" or public_url.startswith("https://")


def current_session(request: Request) -> Session:
    """The signed-in session, or ``SignInRequired``."""
    known = getattr(request.state, SESSION_STATE, None)
    if isinstance(known, Session):
        return known
    try:
        return sessions.resume(services_of(request).store, request.cookies.get(SESSION_COOKIE))
    except Unauthorized as exc:
        raise SignInRequired(str(exc)) from exc


@dataclass(frozen=True, slots=True)
class Form:
    """A posted form: one value per field, except fields that repeat (checkboxes)."""

    fields: dict[str, list[str]]

    def get(self, name: str, default: str = "") -> str:
        """The field's (first) value."""
        values = self.fields.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[str]:
        """Every value of a repeated field."""
        return list(self.fields.get(name, []))


async def read_form(request: Request) -> Form:
    """The url-encoded body (the access middleware has already capped its size)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != FORM_TYPE:
        raise InvalidInput(f"a form post must be {FORM_TYPE}")
    body = (await request.body()).decode("utf-8", "replace")
    try:
        fields = parse_qs(body, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise InvalidInput(f"too many form fields (at most {MAX_FORM_FIELDS})") from exc
    return Form(fields)


SessionDep = Annotated[Session, Depends(current_session)]


async def checked_form(request: Request, session: SessionDep) -> Form:
    """The form of a signed-in post, refused unless it carries the session's CSRF token."""
    form = await read_form(request)
    if not sessions.csrf_matches(session.csrf, form.get(CSRF_FIELD)):
        raise Forbidden("the form's security token is missing or stale; reload the page and try again")
    return form


FormDep = Annotated[Form, Depends(checked_form)]


def set_session_cookie(response: Response, request: Request, secret: str) -> None:
    """Hand the browser its session."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(sessions.SESSION_TTL_S),
        httponly=True,
        samesite="lax",
        secure=secure(request),
        path=WEB_PREFIX,  # only the UI reads it: the API takes keys, never cookies
    )


def login_token(request: Request) -> str:
    """The sign-in form's CSRF token: the browser's current one, or a new one."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def set_login_cookie(response: Response, request: Request, token: str) -> None:
    """Remember the sign-in form's token for the post to compare with."""
    response.set_cookie(
        LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", secure=secure(request), path=LOGIN_PATH
    )
