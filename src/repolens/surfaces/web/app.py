"""``create_web_app(services)``: the UI as an ASGI app that ``repolens serve`` mounts at ``/ui``.

Every response carries a strict Content-Security-Policy: scripts, styles and fetches from this
server only, no inline script or style, no frames, no plugins, forms posting only here. Errors
are pages, not JSON; a request without a session is sent to the sign-in form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from repolens.access import sessions
from repolens.access.ratelimit import RateLimiter
from repolens.errors import RepolensError, Unauthorized, status_of
from repolens.services import Services
from repolens.surfaces.web import WEB_PREFIX, assistants, chat, pages, workflows
from repolens.surfaces.web.render import pygments_css, render
from repolens.surfaces.web.session import PRINCIPAL_STATE, SESSION_COOKIE, SESSION_STATE, SignInRequired

STATIC = Path(__file__).parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# The same headers for responses outside the UI's app (the server's ``/`` redirect).
SECURITY_HEADER_DICT = {k.decode(): v.decode() for k, v in SECURITY_HEADERS}
TITLES = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Ambiguous", 429: "Slow down"}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class SecurityHeaders:
    """Adds the CSP and its companions to every response of the UI; pages are never cached
    (they show code, keys and answers that belong to one principal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith(f"{WEB_PREFIX}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
                taken = {k.lower() for k, _ in headers}
                extra = [*SECURITY_HEADERS]
                if not static and b"cache-control" not in taken:
                    extra.append((b"cache-control", b"no-store"))
                message["headers"] = [*headers, *(h for h in extra if h[0] not in taken)]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# What a page view costs nothing for: the assets, signing in and out, and the progress poll of the
# sources page (one request a second while something indexes would eat a small plan in minutes).
UNCOUNTED = ("/static/", "/pygments.css", "/login", "/logout", "/sources/progress")


class Quota:
    """Counts each page and form post of a signed-in browser against its key's plan (the same
    limiter as the API's, so the UI is no way around a plan), and answers 429 over it."""

    def __init__(self, app: ASGIApp, *, services: Services, limiter: RateLimiter) -> None:
        self.app = app
        self.services = services
        self.limiter = limiter

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Callable[[Message], Awaitable[None]]
    ) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.removeprefix(WEB_PREFIX).startswith(UNCOUNTED):
            await self.app(scope, receive, send)
            return
        secret = Request(scope).cookies.get(SESSION_COOKIE)
        try:
            session = await run_in_threadpool(sessions.resume, self.services.store, secret, self.services.authenticator)
        except Unauthorized:
            await self.app(scope, receive, send)  # the page itself sends the browser to sign in
            return
        state = scope.setdefault("state", {})
        state[PRINCIPAL_STATE] = session.principal  # for the access log, even when refused below
        key = session.principal.key
        decision = await run_in_threadpool(
            self.limiter.acquire, key.key_id, per_hour=key.requests_per_hour, concurrency=key.concurrency
        )
        if not decision.allowed:
            page = _error_page(Request(scope), 429, f"{decision.reason}. Try again in {decision.retry_after} s.")
            page.headers["Retry-After"] = str(decision.retry_after)
            await page(scope, receive, send)
            return
        state[SESSION_STATE] = session  # resolved once per request
        try:
            await self.app(scope, receive, send)
        finally:
            self.limiter.release(key.key_id)


def _error_page(request: Request, status: int, message: str) -> HTMLResponse:
    html = render(
        "error.html",
        request=request,
        principal=None,
        csrf="",
        csrf_field="",
        status=status,
        title=TITLES.get(status, "Error"),
        message=message,
    )
    return HTMLResponse(html, status_code=status)


def create_web_app(services: Services, *, limiter: RateLimiter | None = None) -> FastAPI:
    """The UI over ``services`` (the server's own), counting requests with the API's ``limiter``."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.state.services = services
    app.include_router(pages.router)
    app.include_router(chat.router)
    app.include_router(assistants.router)
    app.include_router(workflows.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/pygments.css", include_in_schema=False)
    def highlighting() -> Response:
        return Response(pygments_css(), media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})

    @app.exception_handler(SignInRequired)
    async def sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.method == "GET" and not request.url.path.endswith("/progress"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"{WEB_PREFIX}/login?next={quote(target, safe='')}", status_code=303)
        return _error_page(request, 401, "Your session has ended. Sign in again.")

    @app.exception_handler(RepolensError)
    async def core_error(request: Request, exc: RepolensError) -> Response:
        return _error_page(request, status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}" for e in exc.errors())
        return _error_page(request, 400, problems or "bad request")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        return _error_page(request, exc.status_code, str(exc.detail))

    app.add_middleware(Quota, services=services, limiter=limiter or RateLimiter(bucket="api"))
    app.add_middleware(SecurityHeaders)  # outermost: the 429 page carries the policy too
    return app
