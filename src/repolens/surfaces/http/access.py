"""Authentication, rate limits, body-size cap, request ids and the access log: one ASGI
middleware in front of every route.

Pure ASGI (not ``BaseHTTPMiddleware``) so streamed responses pass through untouched. The
key check is a point lookup by key id plus a constant-time digest compare; nothing is written
on the hot path. Every response to an authenticated request carries ``X-RateLimit-Limit``,
``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``; a refusal adds ``Retry-After``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from starlette.concurrency import run_in_threadpool

from repolens.access.identity import Authenticator
from repolens.access.keys import Principal
from repolens.access.ratelimit import Decision, RateLimiter
from repolens.errors import BodyTooLarge, RepolensError, StorageError, Unauthorized, status_of
from repolens.storage.base import Database
from repolens.surfaces.http.errors import (
    DIFY_PREFIX,
    OPENAI_PREFIX,
    PROBLEM_JSON,
    Dialect,
    dialect_for,
    openai_error_body,
    problem_body,
)
from repolens.surfaces.web import WEB_PREFIX

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("repolens.access")
log = logging.getLogger("repolens.surfaces.http")

PUBLIC_PATHS = frozenset({"/health", "/ready", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"})
MAX_BODY_BYTES = 1_000_000  # no request of this API needs more (10,000 identifiers fit in ~1 MB)
MCP_PATH = "/mcp"  # where mcpserver.http mounts MCP (it imports this module, so the path lives here)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class AccessMiddleware:
    """Authenticates, rate-limits and logs every request except the public ones."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        db: Callable[[], Database],
        limiter: RateLimiter,
        authenticator: Authenticator,
        dialects: tuple[Dialect, ...] = (),
    ) -> None:
        self.app = app
        self.db = db
        self.limiter = limiter
        self.authenticator = authenticator
        self.dialects = dialects
        self.public_paths = PUBLIC_PATHS.union(*(d.public_paths for d in dialects))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _header(scope, b"x-request-id") or secrets.token_hex(8)
        rid = rid[:64]
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        path: str = scope.get("path", "")
        status_box = [0]
        extra_headers: list[tuple[bytes, bytes]] = [(b"x-request-id", rid.encode("latin-1", "replace"))]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
                own = [(bytes(k), bytes(v)) for k, v in message.get("headers", [])]
                # A route that reports another quota (chat's) sets its own X-RateLimit-* headers.
                taken = {k.lower() for k, _ in own}
                message["headers"] = [*own, *((k, v) for k, v in extra_headers if k not in taken)]
            await send(message)

        principal: Principal | None = None
        try:
            length = _header(scope, b"content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                await self._refuse(scope, send_with_headers, 413, f"request body over {MAX_BODY_BYTES} bytes")
                return
            if length is None and "chunked" in (_header(scope, b"transfer-encoding") or "").lower():
                # No length up front: read the body here, under the cap, so that an oversized one
                # is the same 413 as above (once a route has started parsing it, it is a 400).
                body = await _read_capped(receive)
                if body is None:
                    await self._refuse(scope, send_with_headers, 413, f"request body over {MAX_BODY_BYTES} bytes")
                    return
                receive = _replay(body, receive)
            if path in self.public_paths or _is_web(path):
                await self.app(scope, _capped(receive), send_with_headers)
                return
            authorization, api_key = _header(scope, b"authorization"), _header(scope, b"x-api-key")
            try:
                # One trip off the event loop: the key lookup and (with a shared quota) the
                # quota upsert are database round trips.
                admitted, decision = await run_in_threadpool(self._admit, authorization, api_key)
            except Unauthorized as exc:
                missing = not (authorization or api_key)
                await self._refuse(scope, send_with_headers, 401, str(exc), dify_code=1001 if missing else 1002)
                return
            except RepolensError as exc:
                # Raised here, in front of the routes, it would bypass the app's error handlers
                # and reach the client as a bare 500 (a database or identity-provider outage, a
                # person outside this organization).
                if isinstance(exc, StorageError):
                    log.error("request %s failed: %s", rid, exc)
                await self._refuse(scope, send_with_headers, status_of(exc), str(exc))
                return
            state["principal"] = principal = admitted
            key = admitted.key
            extra_headers.extend(_rate_headers(decision))
            if not decision.allowed:
                extra_headers.append((b"retry-after", str(decision.retry_after).encode()))
                await self._refuse(scope, send_with_headers, 429, decision.reason)
                return
            held = [True]

            async def send_releasing_streams(message: Message) -> None:
                # GET /mcp is the server-to-client SSE stream: open for as long as the client
                # likes and idle, so once it has started it gives its slot back; otherwise two
                # open streams would lock a concurrency-2 key out of everything else.
                if message["type"] == "http.response.start" and held[0] and _is_idle_stream(scope):
                    held[0] = False
                    self.limiter.release(key.key_id)
                await send_with_headers(message)

            try:
                await self.app(scope, _capped(receive), send_releasing_streams)
            finally:
                if held[0]:
                    self.limiter.release(key.key_id)
        finally:
            access_log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope.get("method"),
                        "path": path,
                        "status": status_box[0],
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "request_id": rid,
                        "key_id": principal.key.key_id if principal else None,
                    }
                },
            )

    def _admit(self, authorization: str | None, api_key: str | None) -> tuple[Principal, Decision]:
        principal = self.authenticator.principal(self.db(), authorization, api_key)
        key = principal.key
        return principal, self.limiter.acquire(key.key_id, per_hour=key.requests_per_hour, concurrency=key.concurrency)

    async def _refuse(self, scope: Scope, send: Send, status: int, detail: str, *, dify_code: int | None = None) -> None:
        path: str = scope.get("path", "")
        if path.startswith(DIFY_PREFIX):
            # Dify's registration probe rejects an endpoint only on 403, 404 or 502, so a bad
            # key must be a 403 here for Dify to tell its user.
            code = dify_code or (1002 if status in (401, 403, 429) else 1001)
            body = {"error_code": code, "error_msg": detail}
            status = 403 if status == 401 else status
            media = "application/json"
        elif path.startswith(OPENAI_PREFIX):
            body = openai_error_body(status, detail)
            media = "application/json"
        elif (dialect := dialect_for(self.dialects, path)) is not None:
            body = dialect.body(status, detail)
            media = "application/json"
        else:
            body = problem_body(status, detail)
            body["requestId"] = scope.get("state", {}).get("request_id", "")
            media = PROBLEM_JSON
        payload = json.dumps(body).encode()
        headers = [(b"content-type", media.encode()), (b"content-length", str(len(payload)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="repolens"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _rate_headers(decision: Decision) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(decision.limit).encode()),
        (b"x-ratelimit-remaining", str(max(0, decision.remaining)).encode()),
        (b"x-ratelimit-reset", str(decision.reset).encode()),
    ]


def _is_web(path: str) -> bool:
    """The web UI and ``/`` (its redirect): browsers there authenticate with the UI's session
    cookie, which the UI checks itself, not with a key header."""
    return path == "/" or path == WEB_PREFIX or path.startswith(WEB_PREFIX + "/")


def _is_idle_stream(scope: Scope) -> bool:
    """Whether the request is MCP's standalone GET stream (notifications only, no work)."""
    return scope.get("method") == "GET" and str(scope.get("path", "")).rstrip("/") == MCP_PATH


async def _read_capped(receive: Receive) -> bytes | None:
    """The whole request body, or None as soon as it grows past ``MAX_BODY_BYTES``."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away; the app sees an empty body
            break
        chunk = bytes(message.get("body", b""))
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` that hands out an already-read ``body`` once, then defers to the server
    (whose next message is the client's disconnect)."""
    pending = [True]

    async def replayed() -> Message:
        if pending[0]:
            pending[0] = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _capped(receive: Receive) -> Receive:
    """``receive`` that stops a chunked body from growing past the cap."""
    seen = [0]

    async def wrapped() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            seen[0] += len(message.get("body", b""))
            if seen[0] > MAX_BODY_BYTES:
                raise BodyTooLarge(f"request body over {MAX_BODY_BYTES} bytes")
        return message

    return wrapped
